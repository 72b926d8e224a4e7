"""A segment's member count over the last days, as a line small enough for a table row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from dashboard_extension.charts.svg import svg

WIDTH, HEIGHT, PAD = 120, 28, 3


def sparkline(history: Sequence[dict[str, Any]], label: str = "Members per day") -> Markup:
    values = [int(point["members"]) for point in history]
    if not values:
        return svg(WIDTH, HEIGHT, f"{label}: no history yet", [], "sparkline")
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points = [
        (PAD + i * step, HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD))
        for i, v in enumerate(values)
    ]
    if len(points) == 1:
        points.append((WIDTH - PAD, points[0][1]))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    first, last = history[0], history[-1]
    summary = f"{label}: {values[0]:,} on {first['day']}, {values[-1]:,} on {last['day']}"
    body = [
        f'<polyline points="{path}" class="spark-line" fill="none"/>',
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5" class="spark-dot"/>',
    ]
    return svg(WIDTH, HEIGHT, summary, body, "sparkline")
