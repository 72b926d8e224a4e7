"""Who may frame the dashboard pages: the shop's dashboard origin, nobody else.

A page is only useful inside the dashboard of a shop that installed the app, and framing
it anywhere else invites clickjacking. The shell cannot wait for the handshake to learn
who frames it (the browser enforces `frame-ancestors` before any script runs), so the
origin comes from the `saleorApiUrl` query parameter, trusted only for an installed shop:
its API origin (Saleor Cloud serves the dashboard there) plus `DASHBOARD_ORIGINS`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from plugin.context import AppContext


def origin_of(url: str) -> str | None:
    """`https://shop.example.com/graphql/` → `https://shop.example.com`; None if not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def configured_origins(setting: str, saleor_api_url: str) -> list[str]:
    """`DASHBOARD_ORIGINS` entries for this shop: bare origins, or `<api url>=<origin>`."""
    found: list[str] = []
    for entry in (e.strip() for e in setting.split(",")):
        if not entry:
            continue
        shop, sep, target = entry.rpartition("=")
        if sep and shop.strip() != saleor_api_url:
            continue
        origin = origin_of(target if sep else entry)
        if origin is not None:
            found.append(origin)
    return found


async def dashboard_origins(app: AppContext, saleor_api_url: str | None) -> list[str]:
    """Origins allowed to frame a page opened for this shop; empty unless it is installed."""
    if not saleor_api_url:
        return []
    installation = await app.installations.get(saleor_api_url)
    if installation is None or not installation.active:
        return []
    origins = [origin_of(installation.saleor_api_url)]
    origins += configured_origins(app.settings.dashboard_origins, installation.saleor_api_url)
    return sorted({o for o in origins if o is not None})


def content_security_policy(origins: list[str]) -> str:
    """Everything from the app itself, no inline script, framed only by `origins`."""
    ancestors = " ".join(origins) if origins else "'none'"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        )
    )
