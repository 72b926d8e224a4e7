"""Signed public links under `/l/…`: unsubscribe, preferences, open pixel, click redirect.

Signed with itsdangerous so a link cannot be forged or pointed at another person; a click
redirects only to a URL recorded for that message (no open redirect).
"""

from __future__ import annotations

import json
import re
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeSerializer
from itsdangerous.encoding import base64_encode

SALT = "crm.messaging.links"
HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


class Links:
    def __init__(self, secret: str, base_url: str) -> None:
        self._signer = URLSafeSerializer(secret, salt=SALT)
        # The serializer's own signer with its key derived once: the same signatures,
        # without a key derivation and a zlib attempt per link (five links a message).
        derived = self._signer.make_signer().derive_key()
        self._fast = Signer(derived, salt=SALT, key_derivation="none")
        self.base_url = base_url.rstrip("/")

    def token(self, kind: str, **values: Any) -> str:
        """What `URLSafeSerializer.dumps` makes for these small payloads; `read` checks it."""
        payload = json.dumps({"k": kind, **values}, separators=(",", ":"), ensure_ascii=False)
        return self._fast.sign(base64_encode(payload.encode())).decode()

    def read(self, token: str, kind: str) -> dict[str, Any] | None:
        """The signed values, or None for a forged, damaged or wrong-kind token."""
        try:
            values = self._signer.loads(token)
        except BadSignature:
            return None
        if not isinstance(values, dict) or values.get("k") != kind:
            return None
        return values

    def unsubscribe(self, message_id: int) -> str:
        return f"{self.base_url}/l/u/{self.token('u', m=message_id)}"

    def preferences(self, installation_id: int, profile_id: int) -> str:
        return f"{self.base_url}/l/p/{self.token('p', i=installation_id, p=profile_id)}"

    def open_pixel(self, message_id: int) -> str:
        return f"{self.base_url}/l/o/{self.token('o', m=message_id)}"

    def click(self, message_id: int, index: int) -> str:
        return f"{self.base_url}/l/c/{self.token('c', m=message_id, l=index)}"


def track_html(html: str, links: Links, message_id: int) -> tuple[str, list[str]]:
    """Links in the HTML go through `/l/c/…`; returns the HTML and the recorded URLs.
    Our own `/l/` links (unsubscribe, preferences) are left as they are."""
    recorded: list[str] = []

    def swap(match: re.Match[str]) -> str:
        url = match.group(3).replace("&amp;", "&")
        if url.startswith(links.base_url + "/l/"):
            return match.group(0)
        if url not in recorded:
            recorded.append(url)
        tracked = links.click(message_id, recorded.index(url))
        return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"

    tracked_html = HREF.sub(swap, html)
    pixel = f'<img src="{links.open_pixel(message_id)}" width="1" height="1" alt="">'
    if "</body>" in tracked_html:
        tracked_html = tracked_html.replace("</body>", pixel + "</body>", 1)
    elif tracked_html:
        tracked_html += pixel
    return tracked_html, recorded
