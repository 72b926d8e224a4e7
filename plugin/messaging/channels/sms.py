"""SMS over an HTTP gateway that speaks Twilio's Messages API (many gateways do)."""

from __future__ import annotations

import httpx

from plugin.messaging.channels import Outgoing, PermanentError, TransientError

# Twilio error codes that mean "this number will never work".
PERMANENT_CODES = {21211, 21214, 21610, 21612, 21614}


class SmsGateway:
    def __init__(
        self, http: httpx.AsyncClient, base_url: str, account: str, secret: str, sender: str
    ) -> None:
        self.http, self.base_url = http, base_url.rstrip("/")
        self.account, self.secret, self.sender = account, secret, sender

    async def send(self, message: Outgoing) -> str:
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account}/Messages.json"
        try:
            response = await self.http.post(
                url,
                data={"To": message.to, "From": self.sender, "Body": message.text},
                auth=(self.account, self.secret),
            )
        except httpx.HTTPError as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        body = _json(response)
        if response.status_code in (200, 201):
            return str(body.get("sid") or "")
        detail = f"{response.status_code} {body.get('code')} {body.get('message')}"
        if response.status_code == 400 and body.get("code") in PERMANENT_CODES:
            raise PermanentError(detail)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(detail)
        raise PermanentError(detail)


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
