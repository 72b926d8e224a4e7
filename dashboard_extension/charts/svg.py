"""Small helpers shared by the charts: escaping, numbers, intensity classes."""

from __future__ import annotations

from markupsafe import Markup, escape

# Cell fills go from `heat-0` (nothing) to `heat-5` (the most); CSS gives each theme its
# colours, so no colour is written into the SVG.
HEAT_LEVELS = 5


def heat_level(value: float, maximum: float) -> int:
    if value <= 0 or maximum <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, round(value / maximum * HEAT_LEVELS + 0.49)))


def heat_class(value: float, maximum: float) -> str:
    return f"heat-{heat_level(value, maximum)}"


def on_heat(value: float, maximum: float) -> str:
    """Text over a cell: the strong colour on the two darkest fills, so it stays legible."""
    return " on-strong" if heat_level(value, maximum) >= HEAT_LEVELS - 1 else ""


def shorten(label: str, size: int) -> str:
    return label if len(label) <= size else label[: size - 1] + "…"


def text(
    x: float, y: float, content: object, css: str = "chart-text", anchor: str = "start"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">'
        f"{escape(str(content))}</text>"
    )


def svg(width: float, height: float, label: str, body: list[str], css: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css}" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>' + "".join(body) + "</svg>"
    )


def compact(value: float) -> str:
    """12 → `12`, 12_300 → `12.3k`, 4_500_000 → `4.5M`: fits in a grid cell."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if magnitude >= 10_000:
        return f"{value / 1_000:.0f}k"
    if magnitude >= 1_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
