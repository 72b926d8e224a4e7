"""A flow's results as grouped bars: per step and A/B variant, how many were sent, opened,
clicked and converted, each bar scaled to the most sent so variants compare at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from dashboard_extension.charts.svg import svg, text

MEASURES = (
    ("sent", "Sent"),
    ("opened", "Opened"),
    ("clicked", "Clicked"),
    ("converted", "Converted"),
)
LABEL, BAR, BAR_H, GAP, LEGEND = 120, 460, 18, 16, 28
WIDTH = LABEL + BAR + 130


def variant_label(step: dict[str, Any]) -> str:
    base = f"Step {int(step['stepIndex']) + 1}"
    return f"{base} · {step['variant']}" if step.get("variant") else base


def _legend() -> list[str]:
    body: list[str] = []
    for i, (key, label) in enumerate(MEASURES):
        x = LABEL + i * 90
        body.append(f'<rect x="{x}" y="4" width="12" height="12" rx="2" class="bar-{key}"/>')
        body.append(text(x + 16, 14, label, "chart-muted"))
    return body


def flow_results(steps: Sequence[dict[str, Any]]) -> Markup:
    """`steps`: `messageFlowStats.steps` (sent, opened, clicked, converted per variant)."""
    top = max((int(s["sent"]) for s in steps), default=0)
    body = _legend()
    group = len(MEASURES) * BAR_H + GAP
    for row, step in enumerate(steps):
        y0 = LEGEND + row * group
        label = variant_label(step)
        body.append(text(0, y0 + 2 * BAR_H + 4, label, "chart-strong"))
        sent = int(step["sent"])
        for i, (key, name) in enumerate(MEASURES):
            value = int(step[key])
            y = y0 + i * BAR_H
            width = BAR * value / top if top else 0
            share = f" · {value / sent * 100:.0f}%" if sent and key != "sent" else ""
            body.append(
                f'<rect x="{LABEL}" y="{y + 1}" width="{max(width, 1 if value else 0):.1f}" '
                f'height="{BAR_H - 3}" class="bar-{key}" data-measure="{key}" '
                f'data-value="{value}"><title>{Markup.escape(label)}: {name.lower()} '
                f"{value:,}{share}</title></rect>"
            )
            body.append(
                text(
                    LABEL + BAR + 6,
                    y + BAR_H - 4,
                    f"{value:,} {name.lower()}{share}",
                    "chart-small",
                )
            )
    height = LEGEND + max(len(steps), 1) * group
    if not steps:
        body.append(text(LABEL, LEGEND + 20, "Nothing sent by this flow yet.", "chart-muted"))
    return svg(WIDTH, height, "Sent, opened, clicked and converted per variant", body, "flow")
