"""Saleor restarted with a new signing key (`RSA_PRIVATE_KEY`): its webhooks and the
dashboard's tokens are signed with a key (and `kid`) the CRM has never seen; the CRM must
fetch Saleor's JWKS again and accept them, whichever arrives first."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt

from plugin.saleor.models import Installation
from tests.real_saleor.conftest import Shop, eventually
from tests.real_saleor.merchant import create_customer
from tests.real_saleor.saleor_api import dashboard_token
from tests.real_saleor.server import new_rsa_private_key

LIVE_SECONDS = 15.0


async def stored_kids(shop: Shop) -> set[str]:
    async with shop.db.session() as session:
        installation = await session.get(Installation, shop.installation_id)
        assert installation is not None
        return {key["kid"] for key in installation.jwks["keys"]}


async def rotate(shop: Shop) -> str:
    """Restart Saleor with a fresh key; return the new key's `kid` as Saleor's JWKS says."""
    before = await stored_kids(shop)
    shop.saleor.server.restart(rsa_private_key=new_rsa_private_key())
    shop.saleor.forget_staff_token()
    async with httpx.AsyncClient() as client:
        jwks = (await client.get(f"{shop.saleor.server.base_url}/.well-known/jwks.json")).json()
    kids = {key["kid"] for key in jwks["keys"]}
    assert kids
    assert not kids & before, "Saleor still publishes a key the CRM knows"
    (kid,) = kids
    return str(kid)


async def webhook_arrives(shop: Shop) -> None:
    email = f"crm-rotated-{uuid.uuid4().hex[:8]}@example.com"
    user_id = await create_customer(shop.saleor, email, "Rotated")

    async def on_card() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (
            await shop.crm(
                "query($id: ID!) { customer(saleorUserId: $id) { email } }", {"id": user_id}
            )
        )["customer"]
        return found

    found = await eventually(on_card, timeout=LIVE_SECONDS, what="the webhook signed anew")
    assert found["email"] == email


async def test_webhook_then_dashboard_token_after_a_new_key(shop: Shop) -> None:
    kid = await rotate(shop)
    await webhook_arrives(shop)  # signed with the new key: the CRM refetched the JWKS
    assert kid in await stored_kids(shop)
    token = await dashboard_token(shop.saleor, shop.app_id)
    assert jwt.get_unverified_header(token)["kid"] == kid
    data = await shop.crm("{ importRun { status } }")  # verified with the refetched keys
    assert data["importRun"] is not None


async def test_dashboard_token_then_webhook_after_a_new_key(shop: Shop) -> None:
    kid = await rotate(shop)
    token = await dashboard_token(shop.saleor, shop.app_id)
    assert jwt.get_unverified_header(token)["kid"] == kid
    data = await shop.crm("{ importRun { status } }")  # the first thing signed anew
    assert data["importRun"] is not None
    assert kid in await stored_kids(shop)
    await webhook_arrives(shop)
