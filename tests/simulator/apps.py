"""The installed app as Saleor 3.23.28 describes it: `App.appUrl` and `App.extensions`.

What `appInstall` keeps from the manifest (Saleor's `install_app`): `appUrl`, and per
extension its label, url, mount and target (lower-cased, target `popup` by default),
permissions, options (as `settings`) and identifier. `url` is resolved the way
`saleor/graphql/app/resolvers.py::resolve_app_extension_url` does it: a url starting with
`/` on a POPUP of an app with an `appUrl` is joined to `appUrl`'s path as a *relative*
reference (`urljoin`, so `appUrl`'s last segment is replaced); every other url is
returned exactly as the manifest declared it, for the dashboard to resolve.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlparse

JSON = dict[str, Any]
DEFAULT_TARGET = "popup"


def extension_url(target: str, app_url: str | None, url: str) -> str:
    """Saleor's rule for `AppExtension.url` (3.23.28)."""
    if url.startswith("/") and app_url and target == "popup":
        parsed = urlparse(app_url)
        return parsed._replace(path=urljoin(parsed.path, url[1:])).geturl()
    return url


def installed_extensions(manifest: JSON, app: JSON) -> list[JSON]:
    """`App.extensions` of an app installed from `manifest` (`app`: its `App` object)."""
    app_url = manifest.get("appUrl")
    extensions = []
    for n, declared in enumerate(manifest.get("extensions") or [], start=1):
        target = str(declared.get("target") or DEFAULT_TARGET).lower()
        mount = str(declared["mount"]).lower()
        extensions.append(
            {
                "id": f"AppExtension:{n}",
                "label": declared["label"],
                "url": extension_url(target, app_url, str(declared["url"])),
                "mountName": mount.upper(),
                "targetName": target.upper(),
                "settings": declared.get("options") or {},
                "identifier": declared.get("identifier"),
                "permissions": [
                    {"code": code, "name": code} for code in declared.get("permissions") or []
                ],
                "app": app,
                "accessToken": None,
            }
        )
    return extensions


def installed_app(app_id: str, manifest: JSON | None) -> JSON:
    """The `App` object Saleor answers the app's own token with."""
    app: JSON = {"id": app_id, "name": "Saleor CRM"}
    if manifest is not None:
        app["appUrl"] = manifest.get("appUrl")
        app["extensions"] = installed_extensions(manifest, app)
    else:
        app["appUrl"], app["extensions"] = None, []
    return app


def dashboard_opens(extension: JSON, app_url: str | None) -> str:
    """The address Saleor's dashboard (3.23) loads for an extension, before its query
    string: a POPUP's url as Saleor returned it (`AppFrame src`); a WIDGET's (GET iframe
    or POST form) and a NEW_TAB's url when absolute, else `appUrl + url` as a string; an
    APP_PAGE's url joined to `appUrl` with url-join (through the app page's deep path)."""
    url, target = str(extension["url"]), str(extension["targetName"])
    absolute = "://" in url
    if target == "POPUP" or (absolute and target != "APP_PAGE"):
        return url
    if target == "APP_PAGE":
        return (app_url or "").rstrip("/") + "/" + url.lstrip("/")
    return f"{app_url or ''}{url}"
