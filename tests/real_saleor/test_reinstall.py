"""Uninstall with `appDelete` (Saleor sends the app its own APP_DELETED), then install
again from the manifest URL: the shop's data is kept and the new app works live."""

from __future__ import annotations

import uuid
from typing import Any

from plugin.saleor.models import Installation, InstallationStatus
from tests.real_saleor.conftest import Shop, eventually
from tests.real_saleor.merchant import create_customer
from tests.real_saleor.saleor_api import delete_app, installed_apps
from tests.real_saleor.test_install_import import finished_import

LIVE_SECONDS = 15.0


async def installation(shop: Shop) -> Installation:
    async with shop.db.session() as session:
        found = await session.get(Installation, shop.installation_id)
        assert found is not None
        return found


async def test_uninstall_then_reinstall(shop: Shop) -> None:
    await finished_import(shop)
    before = (await shop.crm("{ customers(first: 1) { totalCount } }"))["customers"]["totalCount"]
    old_app_id, old_installation = shop.app_id, shop.installation_id

    await delete_app(shop.saleor, old_app_id)
    assert old_app_id not in {a["id"] for a in await installed_apps(shop.saleor)}

    async def removed() -> Installation | None:
        found = await installation(shop)
        return found if found.status == InstallationStatus.REMOVED else None

    gone = await eventually(removed, timeout=LIVE_SECONDS, what="APP_DELETED folded")
    assert gone.removed_at is not None

    await shop.install()
    assert shop.app_id != old_app_id
    assert shop.installation_id == old_installation, "a re-install resumes the same shop"
    back = await installation(shop)
    assert back.status == InstallationStatus.ACTIVE
    assert back.app_id == shop.app_id
    assert back.removed_at is None

    run = await finished_import(shop)  # (its outcome: test_install_import)
    assert run["requestedBy"] == "install"
    after = (await shop.crm("{ customers(first: 1) { totalCount } }"))["customers"]["totalCount"]
    assert after == before, "the kept data and what changed meanwhile, nothing twice"

    email = f"crm-after-reinstall-{uuid.uuid4().hex[:8]}@example.com"
    user_id = await create_customer(shop.saleor, email, "Again")

    async def on_card() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (
            await shop.crm(
                "query($id: ID!) { customer(saleorUserId: $id) { email } }", {"id": user_id}
            )
        )["customer"]
        return found

    assert (await eventually(on_card, timeout=LIVE_SECONDS, what="a webhook"))["email"] == email
