"""The checkout funnel as horizontal bars: how many reached each step, and lost between."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from dashboard_extension.charts.svg import svg, text

STEP_LABELS = {
    "started": "Checkout started",
    "contact": "Contact given",
    "ordered": "Order placed",
    "paid": "Paid",
    "fulfilled": "Shipped",
    "delivered": "Delivered",
}
WIDTH, ROW, LABEL, BAR = 640, 34, 150, 330


def funnel_bars(steps: Sequence[dict[str, Any]]) -> Markup:
    counts = [s["count"] for s in steps if s.get("count") is not None]
    top = max(counts, default=0)
    body: list[str] = []
    for i, step in enumerate(steps):
        y = 8 + i * ROW
        label = STEP_LABELS.get(step["key"], step["key"])
        body.append(text(0, y + 17, label))
        count = step.get("count")
        if count is None:
            body.append(
                f'<rect x="{LABEL}" y="{y + 4}" width="{BAR}" height="20" class="bar-off"/>'
            )
            body.append(text(LABEL + 8, y + 18, "not measured", "chart-muted"))
            if step.get("notMeasured"):
                body.append(f"<title>{Markup.escape(step['notMeasured'])}</title>")
            continue
        width = BAR * count / top if top else 0
        body.append(f'<rect x="{LABEL}" y="{y + 4}" width="{BAR}" height="20" class="bar-track"/>')
        body.append(
            f'<rect x="{LABEL}" y="{y + 4}" width="{max(width, 1 if count else 0):.1f}" '
            f'height="20" class="bar" data-step="{Markup.escape(step["key"])}"/>'
        )
        share = step.get("ofStarted")
        shown = f"{count:,}" + (f" · {share * 100:.0f}%" if share is not None and i else "")
        body.append(text(LABEL + BAR + 8, y + 18, shown))
        if step.get("dropOff"):
            body.append(text(WIDTH, y + 18, f"−{step['dropOff']:,}", "chart-muted", "end"))
    return svg(WIDTH, 16 + ROW * len(steps), "Checkout funnel", body, "funnel")
