"""SVG charts drawn on the server: readable without JavaScript, no chart library, no CDN.

Each function takes the API's answer (plain dicts) and returns inline SVG markup whose
colours come from CSS classes, so the same chart follows the light and dark themes.
"""

from dashboard_extension.charts.cohorts import cohort_heatmap
from dashboard_extension.charts.deliveries import delivery_times
from dashboard_extension.charts.funnel import funnel_bars
from dashboard_extension.charts.messages import flow_results
from dashboard_extension.charts.rfm import rfm_grid
from dashboard_extension.charts.sparkline import sparkline

__all__ = [
    "cohort_heatmap",
    "delivery_times",
    "flow_results",
    "funnel_bars",
    "rfm_grid",
    "sparkline",
]
