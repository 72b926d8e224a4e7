"""The RFM grid: recency (rows, 5 on top) × frequency (columns), customers and revenue."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from dashboard_extension.charts.svg import compact, heat_class, on_heat, shorten, svg, text

LABEL, CELL_W, CELL_H, HEADER = 26, 104, 62, 22


def rfm_grid(
    cells: Sequence[dict[str, Any]],
    currency: str,
    *,
    highlight: tuple[int, int] | None = None,
) -> Markup:
    """`cells`: `{recency, frequency, name, customers, revenue{amount}}`; `highlight`: the
    (recency, frequency) of one customer, outlined (the card's "where she stands")."""
    by_position = {(int(c["recency"]), int(c["frequency"])): c for c in cells}
    most = max((int(c["customers"]) for c in cells), default=0)
    body = [text(LABEL + 2.5 * CELL_W, 14, "Frequency →", "chart-muted", "middle")]
    for f in range(1, 6):
        body.append(
            text(LABEL + (f - 0.5) * CELL_W, HEADER + 5 * CELL_H + 16, f, "chart-muted", "middle")
        )
    for row, recency in enumerate(range(5, 0, -1)):
        y = HEADER + row * CELL_H
        body.append(text(8, y + CELL_H / 2 + 5, recency, "chart-muted", "middle"))
        for f in range(1, 6):
            x = LABEL + (f - 1) * CELL_W
            cell = by_position.get((recency, f))
            customers = int(cell["customers"]) if cell else 0
            revenue = Decimal(str(cell["revenue"]["amount"])) if cell else Decimal(0)
            name = str(cell["name"]) if cell else ""
            css = "cell " + heat_class(customers, most)
            if highlight == (recency, f):
                css += " cell-you"
            label = f"R{recency} F{f} {name}: {customers:,} customers, {revenue:,.2f} {currency}"
            body.append(
                f'<rect x="{x + 1}" y="{y + 1}" width="{CELL_W - 2}" height="{CELL_H - 2}" rx="4" '
                f'class="{css}" data-recency="{recency}" data-frequency="{f}">'
                f"<title>{Markup.escape(label)}</title></rect>"
            )
            strong = on_heat(customers, most)
            body.append(text(x + 6, y + 16, shorten(name, 17), "cell-name" + strong))
            body.append(text(x + 6, y + 36, f"{customers:,}", "cell-count" + strong))
            money = f"{compact(float(revenue))} {currency}"
            body.append(text(x + 6, y + 52, money, "cell-text" + strong))
    width = LABEL + 5 * CELL_W
    return svg(width, HEADER + 5 * CELL_H + 22, f"RFM grid ({currency})", body, "rfm")
