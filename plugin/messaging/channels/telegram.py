"""Telegram Bot API `sendMessage` (the chat id is the customer's, from their metadata)."""

from __future__ import annotations

import httpx

from plugin.messaging.channels import Outgoing, PermanentError, TransientError

DEFAULT_API = "https://api.telegram.org"


class TelegramBot:
    def __init__(self, http: httpx.AsyncClient, token: str, api_url: str = DEFAULT_API) -> None:
        self.http, self.token, self.api_url = http, token, api_url.rstrip("/")

    async def send(self, message: Outgoing) -> str:
        url = f"{self.api_url}/bot{self.token}/sendMessage"
        payload = {"chat_id": message.to, "text": message.text, "disable_web_page_preview": True}
        try:
            response = await self.http.post(url, json=payload)
        except httpx.HTTPError as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code == 200 and body.get("ok"):
            result = body.get("result") or {}
            return str(result.get("message_id", "")) if isinstance(result, dict) else ""
        detail = f"{response.status_code} {body.get('description', '')}"
        # 403: the customer blocked the bot; 400 "chat not found": a wrong id. Both final.
        if response.status_code in (400, 403):
            raise PermanentError(detail)
        raise TransientError(detail)
