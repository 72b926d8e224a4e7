"""Prometheus metrics served on `GET /metrics`.

Every label value comes from a closed set (known events, enum codes and statuses): a
value taken from a request would mint a new series per distinct value, and anyone may
send webhooks. `one_of` maps anything outside the set to "other".
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
OTHER = "other"


def one_of(value: str, allowed: Collection[str]) -> str:
    """`value` when it belongs to the closed set `allowed`, else "other"."""
    return value if value in allowed else OTHER


WEBHOOKS_RECEIVED = Counter(
    "crm_webhooks_received_total",
    "Verified webhooks stored in the inbox (duplicates counted separately).",
    ["event", "duplicate"],
    registry=REGISTRY,
)
WEBHOOKS_REJECTED = Counter(
    "crm_webhooks_rejected_total",
    "Webhooks refused before storage, by reason.",
    ["event", "reason"],
    registry=REGISTRY,
)
FOLD_FAILURES = Counter(
    "crm_fold_failures_total",
    "Inbox events whose fold failed (permanent=true: left for a manual replay).",
    ["event", "permanent"],
    registry=REGISTRY,
)
FOLD_LATENCY = Histogram(
    "crm_fold_latency_seconds",
    "Time from receiving a webhook to its fold being committed.",
    ["event"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
INBOX_BACKLOG = Gauge(
    "crm_inbox_backlog",
    "Inbox events not folded yet, by status (read when scraped).",
    ["status"],
    registry=REGISTRY,
)
