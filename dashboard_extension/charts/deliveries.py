"""Delivery times as bars: per carrier (or month), the median days to deliver drawn over
the 90th percentile, with the parcel count and the share that hit an exception."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from dashboard_extension.charts.svg import svg, text

LABEL, BAR, ROW = 130, 300, 30
WIDTH = LABEL + BAR + 440


def _days(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} d"


def delivery_times(groups: Sequence[dict[str, Any]], title: str) -> Markup:
    """`groups`: `DeliveryGroup`s (key, shipments, medianDays, p90Days, exceptionShare)."""
    longest = max(
        (float(g.get("p90Days") or g.get("medianDays") or 0) for g in groups), default=0.0
    )
    body: list[str] = [
        '<rect x="0" y="2" width="12" height="10" class="bar-median"/>',
        text(16, 11, "median", "chart-muted"),
        '<rect x="80" y="2" width="12" height="10" class="bar-p90"/>',
        text(96, 11, "90% delivered within", "chart-muted"),
    ]
    for row, group in enumerate(groups):
        y = 20 + row * ROW
        key = str(group["key"]).replace("_", " ")
        body.append(text(0, y + 15, key[:18]))
        median, p90 = group.get("medianDays"), group.get("p90Days")
        if median is None:
            body.append(
                f'<rect x="{LABEL}" y="{y + 4}" width="{BAR}" height="16" class="bar-off"/>'
            )
            body.append(text(LABEL + 6, y + 16, "nothing delivered yet", "chart-muted"))
        else:
            scale = BAR / longest if longest else 0
            p90_width = float(p90 or median) * scale
            median_width = float(median) * scale
            body.append(
                f'<rect x="{LABEL}" y="{y + 4}" width="{max(p90_width, 1):.1f}" height="16" '
                f'class="bar-p90"><title>{Markup.escape(key)}: 90% within {_days(p90)}'
                "</title></rect>"
            )
            body.append(
                f'<rect x="{LABEL}" y="{y + 7}" width="{max(median_width, 1):.1f}" height="10" '
                f'class="bar-median" data-median="{float(median):.2f}">'
                f"<title>{Markup.escape(key)}: median {_days(median)}</title></rect>"
            )
        share = float(group.get("exceptionShare") or 0)
        count = int(group["shipments"])
        summary = (
            f"median {_days(median)} · 90% within {_days(p90)} · {count:,} "
            f"parcel{'' if count == 1 else 's'} · {share * 100:.0f}% exceptions"
        )
        css = "chart-bad" if share >= 0.1 else "chart-text"
        body.append(text(LABEL + BAR + 8, y + 16, summary, css))
    if not groups:
        body.append(text(0, 40, "No parcel shipped in the period.", "chart-muted"))
    height = 24 + max(len(groups), 1) * ROW
    return svg(WIDTH, height, title, body, "deliveries")
