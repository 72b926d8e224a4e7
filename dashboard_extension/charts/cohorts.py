"""Cohort retention as a heatmap: one row per first-order month, one column per month after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from dashboard_extension.charts.svg import heat_class, on_heat, svg, text

LABEL, SIZE, CELL, HEADER = 84, 52, 40, 22
MAX_OFFSETS = 12


def cohort_heatmap(cohorts: Sequence[dict[str, Any]]) -> Markup:
    offsets = min(MAX_OFFSETS, max((len(c["retention"]) for c in cohorts), default=0))
    body = [text(0, 15, "Cohort", "chart-muted"), text(LABEL, 15, "Size", "chart-muted")]
    for k in range(offsets):
        x = LABEL + SIZE + k * CELL + CELL / 2
        body.append(text(x, 15, f"M{k}", "chart-muted", "middle"))
    for row, cohort in enumerate(cohorts):
        y = HEADER + row * CELL
        body.append(text(0, y + CELL / 2 + 5, str(cohort["month"])[:7]))
        body.append(text(LABEL, y + CELL / 2 + 5, f"{cohort['size']:,}"))
        for k, share in enumerate(cohort["retention"][:offsets]):
            x = LABEL + SIZE + k * CELL
            active = cohort["active"][k] if k < len(cohort["active"]) else 0
            scale = 1.0 if k else max(share, 1e-9)
            css = heat_class(share, scale)
            body.append(
                f'<rect x="{x + 1}" y="{y + 1}" width="{CELL - 2}" height="{CELL - 2}" '
                f'rx="3" class="cell {css}"><title>{Markup.escape(str(cohort["month"])[:7])}, '
                f"month {k}: {active:,} of {cohort['size']:,} ({share * 100:.0f}%)</title></rect>"
            )
            shown = f"{share * 100:.0f}%"
            css_text = "cell-text" + on_heat(share, scale)
            body.append(text(x + CELL / 2, y + CELL / 2 + 4, shown, css_text, "middle"))
    width = LABEL + SIZE + max(offsets, 1) * CELL
    height = HEADER + max(len(cohorts), 1) * CELL
    if not cohorts:
        body.append(text(0, HEADER + 20, "No first orders in the period.", "chart-muted"))
    return svg(width, height, "Cohort retention by month", body, "cohorts")
