"""Saleor's GraphQL API as its staff (and the dashboard) use it: the real thing's answers,
with every `errors` list checked, so a test fails where Saleor refused something."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.real_saleor.environment import STAFF_EMAIL, STAFF_PASSWORD
from tests.real_saleor.server import SaleorServer

APP_PERMISSIONS = ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS"]
# tokenCreate's access token lives JWT_TTL_ACCESS (5 minutes); renewed well before.
TOKEN_REUSE_SECONDS = 200.0


class SaleorRefused(AssertionError):
    """Saleor answered with GraphQL errors or mutation errors."""


class SaleorApi:
    def __init__(self, server: SaleorServer) -> None:
        self.server = server
        self._staff_token: tuple[float, str] | None = None

    async def request(
        self, document: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The whole answer (`data` and `errors`), for tests about Saleor's own errors."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.post(
                self.server.api_url,
                json={"query": document, "variables": variables or {}},
                headers=headers,
            )
        if answer.status_code >= 500:
            raise SaleorRefused(f"Saleor answered {answer.status_code}:\n{self.server.log_tail()}")
        body: dict[str, Any] = answer.json()
        return body

    async def query(
        self, document: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        body = await self.request(document, variables, token=token)
        if body.get("errors"):
            raise SaleorRefused(f"Saleor refused {document.split('{')[0].strip()}: {body}")
        return body["data"]

    async def staff_token(self) -> str:
        now = time.monotonic()
        if self._staff_token is None or now - self._staff_token[0] > TOKEN_REUSE_SECONDS:
            data = await self.mutate(
                "mutation($email: String!, $password: String!) {"
                " tokenCreate(email: $email, password: $password) { token errors { message } } }",
                {"email": STAFF_EMAIL, "password": STAFF_PASSWORD},
                token=None,
            )
            self._staff_token = (now, data["token"])
        return self._staff_token[1]

    def forget_staff_token(self) -> None:
        """After a signing-key change the old token no longer verifies."""
        self._staff_token = None

    async def staff(self, document: str, variables: dict[str, Any] | None = None) -> Any:
        return await self.query(document, variables, token=await self.staff_token())

    async def mutate(
        self,
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None | bool = True,
    ) -> Any:
        """Run a mutation with one top-level field; its `errors` must be empty."""
        bearer = await self.staff_token() if token is True else (token or None)
        data = await self.query(document, variables, token=bearer)
        (result,) = data.values()
        if result.get("errors"):
            raise SaleorRefused(f"Saleor refused {document.strip()[:80]}: {result['errors']}")
        return result


async def install_app(api: SaleorApi, manifest_url: str, app_name: str = "Saleor CRM") -> str:
    """`appInstall` as the dashboard's "Install external app" does; wait until Saleor has
    finished (the installation leaves `appsInstallations` on success, stays FAILED with a
    message otherwise) and return the new app's id."""
    result = await api.mutate(
        """mutation($input: AppInstallInput!) {
          appInstall(input: $input) {
            appInstallation { id status message } errors { code message }
          }
        }""",
        {
            "input": {
                "appName": app_name,
                "manifestUrl": manifest_url,
                "permissions": APP_PERMISSIONS,
            }
        },
    )
    installation_id = result["appInstallation"]["id"]
    deadline = time.monotonic() + 60
    while True:
        data = await api.staff("{ appsInstallations { id status message manifestUrl } }")
        mine = [i for i in data["appsInstallations"] if i["id"] == installation_id]
        if mine and mine[0]["status"] == "FAILED":
            raise SaleorRefused(f"Saleor could not install the app: {mine[0]['message']}")
        if not mine:
            break
        if time.monotonic() > deadline:
            raise SaleorRefused(f"the installation is still {mine[0]['status']} after 60 s")
        await asyncio.sleep(0.3)
    apps = await installed_apps(api)
    found = [a for a in apps if a["manifestUrl"] == manifest_url]
    if len(found) != 1:
        raise SaleorRefused(f"expected one app from {manifest_url}, Saleor lists {apps}")
    app_id: str = found[0]["id"]
    return app_id


async def installed_apps(api: SaleorApi) -> list[dict[str, Any]]:
    data = await api.staff(
        """{ apps(first: 100, filter: {type: THIRDPARTY}) { edges { node {
              id name manifestUrl isActive appUrl
              extensions { id identifier url mountName targetName accessToken }
        } } } }"""
    )
    return [edge["node"] for edge in data["apps"]["edges"]]


async def delete_app(api: SaleorApi, app_id: str) -> None:
    await api.mutate(
        "mutation($id: ID!) { appDelete(id: $id) { app { id } errors { code message } } }",
        {"id": app_id},
    )


async def dashboard_token(api: SaleorApi, app_id: str) -> str:
    """The JWT the dashboard hands the app's iframe: `app(id) { accessToken }` of the
    logged-in staff member."""
    data = await api.staff("query($id: ID!) { app(id: $id) { accessToken } }", {"id": app_id})
    token: str = data["app"]["accessToken"]
    return token
