"""Every page the dashboard can open: its shell URL, fragment view, title and navigation.

A feature adds its pages here: one `Page`, one view in `views/`, one template in
`templates/fragments/`; the navigation shows every page with a `nav` label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dashboard_extension.views import (
    View,
    customers,
    deliveries,
    flows,
    imports,
    orders,
    overview,
    segments,
    templates,
    tokens,
)

Kind = Literal["app", "popup", "widget"]


@dataclass(frozen=True)
class Page:
    path: str
    fragment: str
    title: str
    kind: Kind = "app"
    nav: str | None = None  # label in the app's navigation; None: reached by links only
    section: str | None = None  # which navigation entry is current on this page


PAGES: tuple[Page, ...] = (
    Page("/dashboard/app", "overview", "Overview", nav="Overview", section="overview"),
    Page(
        "/dashboard/app/customers", "customers", "Customers", nav="Customers", section="customers"
    ),
    Page("/dashboard/app/customer", "customer_card", "Customer", section="customers"),
    Page("/dashboard/app/segments", "segments", "Segments", nav="Segments", section="segments"),
    Page("/dashboard/app/segments/new", "segment_builder", "New segment", section="segments"),
    Page("/dashboard/app/segments/edit", "segment_builder", "Edit segment", section="segments"),
    Page("/dashboard/app/segments/members", "segment_members", "Segment", section="segments"),
    Page("/dashboard/app/flows", "flows", "Mailing flows", nav="Flows", section="flows"),
    Page("/dashboard/app/flows/new", "flow_editor", "New flow", section="flows"),
    Page("/dashboard/app/flows/edit", "flow_editor", "Edit flow", section="flows"),
    Page(
        "/dashboard/app/templates", "templates", "Templates", nav="Templates", section="templates"
    ),
    Page("/dashboard/app/templates/new", "template_editor", "New template", section="templates"),
    Page("/dashboard/app/templates/edit", "template_editor", "Template", section="templates"),
    Page(
        "/dashboard/app/messages",
        "flow_stats",
        "Message stats",
        nav="Message stats",
        section="messages",
    ),
    Page(
        "/dashboard/app/deliveries",
        "deliveries",
        "Deliveries",
        nav="Deliveries",
        section="deliveries",
    ),
    Page("/dashboard/app/import", "import_progress", "Import", nav="Import", section="import"),
    Page("/dashboard/app/tokens", "tokens", "API tokens", nav="API tokens", section="tokens"),
    # Extensions mounted in Saleor's own pages (manifest `extensions`).
    Page("/dashboard/app/extensions/customer-widget", "customer_widget", "CRM", kind="widget"),
    Page("/dashboard/app/extensions/customer-card", "customer_card", "CRM customer", kind="popup"),
    Page("/dashboard/app/extensions/order-widget", "order_widget", "CRM buyer", kind="widget"),
)

# Fragments that are not pages of their own: the live previews (segments, templates).
VIEWS: dict[str, View] = {
    "overview": overview.overview,
    "customers": customers.customer_list,
    "customer_card": customers.card,
    "customer_widget": customers.widget,
    "order_widget": orders.order_widget,
    "segments": segments.segment_list,
    "segment_builder": segments.builder,
    "segment_members": segments.members,
    "segment_preview": segments.preview,
    "tokens": tokens.token_list,
    "flows": flows.flow_list,
    "flow_editor": flows.flow_editor,
    "flow_stats": flows.flow_stats,
    "templates": templates.template_list,
    "template_editor": templates.template_editor,
    "template_preview": templates.template_preview,
    "deliveries": deliveries.delivery_list,
    "import_progress": imports.import_progress,
}


def saleor_stitched_path(page: Page) -> str | None:
    """Where Saleor sends a popup declared with a *relative* url (manifests before the
    absolute ones, still stored by shops that installed them): Saleor joins the url to
    `appUrl` as a relative reference, so `/dashboard/app` + `/extensions/customer-card`
    opens `/dashboard/extensions/customer-card`. Served too, so those shops' popups open
    without a re-install."""
    if page.kind != "popup" or not page.path.startswith("/dashboard/app/"):
        return None
    return "/dashboard/" + page.path.removeprefix("/dashboard/app/")


def navigation() -> list[Page]:
    return [page for page in PAGES if page.nav]
