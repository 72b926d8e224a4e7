"""The app manifest: `manifest.json` (relative paths) made absolute from `APP_URL`.

Extension URLs are served absolute (`appUrl` + the extension's path) except APP_PAGE's,
which the dashboard requires relative: Saleor 3.23 resolves a *relative* POPUP url
itself, against `appUrl` as a relative reference (`/dashboard/app` + `/extensions/x` →
`/dashboard/extensions/x`, its last segment replaced), while the dashboard joins a
relative WIDGET or NEW_TAB url to `appUrl` as a string (`/dashboard/app/extensions/x`)
and an APP_PAGE one with url-join. Absolute URLs are taken as they are by both, so every
extension opens where the app serves it.

Each webhook's `query` in `manifest.json` names a document in `graphql/subscriptions/`;
the served manifest carries the document's text, as Saleor expects.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from plugin import __version__
from plugin.saleor.documents import document

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("POPUP", "APP_PAGE", "NEW_TAB", "WIDGET")
# Mounts the dashboard offers a `WIDGET` on (PLATFORM.md §5); every other mount takes
# POPUP, APP_PAGE or NEW_TAB. HOMEPAGE_WIDGETS is 3.23-only, the rest exist since 3.22.
WIDGET_MOUNTS = frozenset(
    f"{entity}_DETAILS_WIDGETS"
    for entity in (
        "ORDER",
        "PRODUCT",
        "VOUCHER",
        "DRAFT_ORDER",
        "GIFT_CARD",
        "CUSTOMER",
        "COLLECTION",
    )
)
# The mounts this app uses, all known to the dashboards of Saleor 3.22 and 3.23.
SALEOR_322_MOUNTS = frozenset(
    {
        "CUSTOMER_DETAILS_WIDGETS",
        "CUSTOMER_DETAILS_MORE_ACTIONS",
        "CUSTOMER_OVERVIEW_MORE_ACTIONS",
        "ORDER_DETAILS_WIDGETS",
        "ORDER_DETAILS_MORE_ACTIONS",
        "NAVIGATION_CUSTOMERS",
        "NAVIGATION_ORDERS",
    }
)
MANIFEST_PATH = ROOT / "manifest.json"
URL_FIELDS = ("appUrl", "tokenTargetUrl", "dataPrivacyUrl", "homepageUrl", "supportUrl")


@cache
def _template() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(MANIFEST_PATH.read_text())
    return manifest


def app_identifier() -> str:
    """The manifest's `id`: Saleor stores it as `App.identifier`, unique among its apps."""
    identifier: str = _template()["id"]
    return identifier


def absolute(base_url: str, path: str) -> str:
    return path if "://" in path else base_url.rstrip("/") + "/" + path.lstrip("/")


def build_manifest(base_url: str) -> dict[str, Any]:
    manifest = copy.deepcopy(_template())
    manifest["version"] = __version__
    for key in URL_FIELDS:
        if manifest.get(key):
            manifest[key] = absolute(base_url, manifest[key])
    logo = manifest.get("brand", {}).get("logo", {})
    if logo.get("default"):
        logo["default"] = absolute(base_url, logo["default"])
    for webhook in manifest.get("webhooks", []):
        webhook["targetUrl"] = absolute(base_url, webhook["targetUrl"])
        webhook["query"] = document(ROOT / webhook["query"])
    for extension in manifest.get("extensions", []):
        extension["url"] = extension_url(manifest.get("appUrl"), extension)
    return manifest


def extension_url(app_url: str | None, extension: dict[str, Any]) -> str:
    """The url to declare: absolute (`appUrl` + path) for every target but APP_PAGE."""
    url: str = extension.get("url", "")
    if extension.get("target", "POPUP") == "APP_PAGE" or not app_url or "://" in url:
        return url
    return app_url.rstrip("/") + "/" + url.lstrip("/")


def extension_problems(manifest: dict[str, Any]) -> list[str]:
    """What Saleor 3.22's validation or the 3.22/3.23 dashboards would refuse in
    `extensions` (3.23 core accepts any string; the dashboard is the contract there)."""
    problems: list[str] = []
    granted = set(manifest.get("permissions", []))
    seen: set[str] = set()
    for extension in manifest.get("extensions", []):
        name = extension.get("identifier") or extension.get("label", "?")
        mount, target = extension.get("mount"), extension.get("target", "POPUP")
        url: str = extension.get("url", "")
        if mount not in SALEOR_322_MOUNTS:
            problems.append(f"{name}: mount {mount!r} is not one this app may use")
        if target not in TARGETS:
            problems.append(f"{name}: unknown target {target!r}")
        if (target == "WIDGET") != (mount in WIDGET_MOUNTS):
            problems.append(f"{name}: WIDGET goes on *_DETAILS_WIDGETS mounts, and only there")
        if not url.startswith("/") and (target == "APP_PAGE" or "://" not in url):
            problems.append(f"{name}: APP_PAGE urls must be relative paths")
        if url.startswith("/") and not manifest.get("appUrl"):
            problems.append(f"{name}: a relative url needs appUrl")
        if not set(extension.get("permissions", [])) <= granted:
            problems.append(f"{name}: permissions outside the app's")
        identifier = extension.get("identifier", "")
        if not identifier or len(identifier) > 256 or identifier in seen:
            problems.append(f"{name}: identifier missing, too long or repeated")
        seen.add(identifier)
        options = extension.get("options") or {}
        method = options.get("widgetTarget", {}).get("method", "GET")
        if method not in ("GET", "POST") or ("widgetTarget" in options and target != "WIDGET"):
            problems.append(f"{name}: widgetTarget options belong to a WIDGET, method GET or POST")
    return problems
