"""The app manifest: `manifest.json` (relative paths) made absolute from `APP_URL`.

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

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_PATH = ROOT / "manifest.json"
URL_FIELDS = ("appUrl", "tokenTargetUrl", "dataPrivacyUrl", "homepageUrl", "supportUrl")


@cache
def _template() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(MANIFEST_PATH.read_text())
    return manifest


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
        webhook["query"] = (ROOT / webhook["query"]).read_text()
    # Extension URLs stay relative: Saleor joins them to appUrl (valid on 3.22 and 3.23).
    return manifest
