"""Install from the manifest URL with `appInstall`, then the history import of
populatedb's shop, odd rows and all: every customer's figures equal Saleor's own."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from plugin.commerce.models import Order
from plugin.saleor.models import Installation
from tests.real_saleor.conftest import Shop, eventually
from tests.real_saleor.figures import expected_figures, saleor_orders
from tests.real_saleor.saleor_api import APP_PERMISSIONS, installed_apps

IMPORT_RUN = """{ importRun {
  status requestedBy processed total failed lastError
  resources { name processed total finished }
  failures { resource objectId message }
} }"""
CUSTOMER = """query($email: String!) { customer(email: $email) {
  email ordersCount firstOrderAt lastOrderAt spentByCurrency { amount currency }
} }"""


async def test_app_install_registers_the_shop(shop: Shop) -> None:
    """Saleor fetched the manifest, posted the token to /api/register, and the CRM stored
    the installation with Saleor's app id and signing keys."""
    apps = await installed_apps(shop.saleor)
    (app,) = [a for a in apps if a["id"] == shop.app_id]
    assert app["isActive"] is True
    assert app["appUrl"] == f"{shop.app.base_url}/dashboard/app"
    permissions = await shop.saleor.staff(
        "query($id: ID!) { app(id: $id) { permissions { code } } }", {"id": shop.app_id}
    )
    assert sorted(p["code"] for p in permissions["app"]["permissions"]) == sorted(APP_PERMISSIONS)
    async with shop.db.session() as session:
        installation = await session.get(Installation, shop.installation_id)
        assert installation is not None
        assert installation.app_id == shop.app_id
        assert installation.saleor_api_url == shop.saleor.server.api_url
        assert installation.jwks["keys"], "no signing keys fetched at install"


async def finished_import(shop: Shop) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        run: dict[str, Any] | None = (await shop.crm(IMPORT_RUN))["importRun"]
        return run if run and run["status"] in ("DONE", "FAILED", "CANCELLED") else None

    return await eventually(probe, timeout=120, what="the install's import finished")


async def test_import_of_populatedb_shop_matches_saleor(shop: Shop) -> None:
    run = await finished_import(shop)
    assert run["requestedBy"] == "install"
    assert run["status"] == "DONE", run
    assert all(r["finished"] for r in run["resources"]), run["resources"]

    orders = await saleor_orders(shop.saleor)
    assert len(orders) >= 20, "populatedb makes about 20 orders"
    failed = {f["objectId"]: f["message"] for f in run["failures"] if f["resource"] == "orders"}
    assert all(failed.values()), f"a failure without Saleor's message: {run['failures']}"
    async with shop.db.session() as session:
        imported = set(
            await session.scalars(
                select(Order.saleor_id).where(Order.installation_id == shop.installation_id)
            )
        )
    saleor_ids = {o["id"] for o in orders}
    missing = saleor_ids - imported - set(failed)
    assert not missing, f"orders neither imported nor listed as failed: {missing}"
    for object_id in failed:
        # Only what Saleor itself cannot serialise may be left out.
        answer = await shop.saleor.request(
            "query($id: ID!) { order(id: $id) { id origin } }",
            {"id": object_id},
            token=await shop.saleor.staff_token(),
        )
        assert answer.get("errors"), f"{object_id} is readable yet was not imported"

    readable = [o for o in orders if o["id"] in imported]
    expected = expected_figures(readable)
    assert expected, "no customer with orders to compare"
    for email, figures in expected.items():
        customer = (await shop.crm(CUSTOMER, {"email": email}))["customer"]
        assert customer is not None, f"{email} has orders in Saleor but no CRM profile"
        assert customer["ordersCount"] == figures.orders_count, email
        first, last = figures.first_order_at, figures.last_order_at
        assert customer["firstOrderAt"] == (first.isoformat() if first else None), email
        assert customer["lastOrderAt"] == (last.isoformat() if last else None), email
        assert spent_by_currency(customer) == nonzero(figures.spent), email


def spent_by_currency(customer: dict[str, Any]) -> dict[str, Decimal]:
    """`Customer.spentByCurrency`, the currencies with money kept."""
    return nonzero({m["currency"]: Decimal(str(m["amount"])) for m in customer["spentByCurrency"]})


def nonzero(money: dict[str, Decimal]) -> dict[str, Decimal]:
    return {currency: amount for currency, amount in money.items() if amount}


async def test_every_saleor_customer_has_a_profile(shop: Shop) -> None:
    """populatedb's registered customers (with or without orders) are all in the CRM,
    under their Saleor user id."""
    await finished_import(shop)
    data = await shop.saleor.staff(
        "{ customers(first: 100) { totalCount edges { node { id email } } } }"
    )
    customers = [edge["node"] for edge in data["customers"]["edges"]]
    assert data["customers"]["totalCount"] == len(customers) >= 20
    for customer in customers:
        found = (
            await shop.crm(
                "query($id: ID!) { customer(saleorUserId: $id) { email saleorUserId } }",
                {"id": customer["id"]},
            )
        )["customer"]
        assert found == {"email": customer["email"], "saleorUserId": customer["id"]}
