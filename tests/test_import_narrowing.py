"""An import reads around the objects Saleor cannot give (issue 15.2): populatedb's orders
with an empty `origin` make Saleor's GraphQL error on the whole page (`data.orders` null);
the page is narrowed to smaller pages, the object alone, the object without the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import parse, validate
from sqlalchemy import select

from plugin.commerce.models import Order
from plugin.db.engine import Database
from plugin.importer import source
from plugin.importer.models import ImportStatus
from plugin.importer.narrowing import ids_only, without_fields
from plugin.importer.service import failures_of
from plugin.saleor.client import load_query
from plugin.settings import Settings
from tests.importing import count, get_run, queue_run, run_import, shop_installation
from tests.importing import shop_with_history as history
from tests.saleor_schema import saleor_schema

SALEOR_ORIGIN_ERROR = 'Expected a value of type "OrderOriginEnum" but received: '


def _order_requests(saleor: Any) -> list[dict[str, Any]]:
    bodies = [json.loads(r["body"]) for r in saleor.graphql_requests]
    return [b for b in bodies if "ImportOrders" in b["query"]]


def _numbers(saleor: Any) -> list[str]:
    orders = sorted(saleor.shop.orders.values(), key=lambda o: (o["created"], o["id"]))
    return [o["number"] for o in orders]


async def _stored_orders(db: Database, installation_id: int) -> dict[str, Order]:
    async with db.session() as session:
        rows = await session.scalars(select(Order).where(Order.installation_id == installation_id))
        return {row.saleor_id: row for row in rows}


def test_a_variant_document_leaves_out_one_field_in_one_place() -> None:
    document = load_query("import_orders")
    variant = without_fields(document, "orders", frozenset({("origin",)}))
    assert validate(saleor_schema(), parse(variant)) == []
    assert "origin" in document
    assert "origin" not in variant
    assert "fragment" not in variant  # inlined: Saleor refuses unused fragments
    # A field of a fragment used twice goes from the one place the error named.
    country = without_fields(document, "orders", frozenset({("shippingAddress", "country")}))
    assert validate(saleor_schema(), parse(country)) == []
    assert country.count("country {") == document.count("country {")  # once in the fragment
    assert "billingAddress" in country
    assert "sortBy" in country
    ids = ids_only(document, "orders")
    assert validate(saleor_schema(), parse(ids)) == []
    assert "userEmail" not in ids
    assert "endCursor" in ids
    assert "CREATED_AT" in ids


def test_the_simulator_errors_as_saleor_does_on_an_empty_origin(saleor: Any) -> None:
    import httpx

    saleor.shop = history(customers=1, guest_orders=2)
    bad = list(saleor.shop.orders)[1]
    saleor.shop.store_raw(bad, origin="")
    token = saleor.new_app_token()
    answer = httpx.post(
        saleor.api_url,
        json={"query": load_query("import_orders"), "variables": {"first": 10}},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert answer["data"] == {"orders": None}
    [error] = answer["errors"]
    assert error["message"] == SALEOR_ORIGIN_ERROR
    assert error["path"] == ["orders", "edges", 1, "node", "origin"]


async def test_unreadable_orders_are_read_around_and_listed(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop = history(customers=3, guest_orders=5)  # 8 orders
    ids = list(shop.orders)
    broken = [ids[0], ids[3], ids[4], ids[7]]  # first, two side by side, last
    for order_id in broken:
        shop.store_raw(order_id, origin="")
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    assert await run_import(db, settings, run_id, import_page_size=3) is ImportStatus.DONE

    run = await get_run(db, run_id)
    assert run.last_error is None
    stored = await _stored_orders(db, installation_id)
    # Every order once, the cursors intact; the broken ones without their origin.
    assert sorted(stored) == sorted(ids)
    assert {o.number for o in stored.values()} == set(_numbers(saleor))
    assert all(stored[i].origin is None for i in broken)
    assert all(stored[i].origin for i in ids if i not in broken)
    async with db.session() as session:
        failures = await failures_of(session, run_id)
    assert sorted(f.object_id for f in failures) == sorted(broken)
    for failure in failures:
        assert failure.resource == "orders"
        assert SALEOR_ORIGIN_ERROR in failure.message
        assert "origin" in failure.message
    assert run.failed == len(broken)
    # Narrowing costs a few requests per broken order, not a page each.
    assert len(_order_requests(saleor)) <= 3 + 3 * len(broken)
    assert saleor.invalid_queries == []

    # Run again: nothing new, nothing twice, the same failures listed for the new run.
    second = await queue_run(db, installation_id)
    assert await run_import(db, settings, second, import_page_size=3) is ImportStatus.DONE
    assert await count(db, Order, installation_id) == len(ids)


async def test_an_object_that_cannot_be_read_even_alone_is_skipped_and_listed(
    saleor: Any, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "MAX_FIELDS_LEFT_OUT", 0)  # no field may be left out
    shop = history(customers=2, guest_orders=3)
    ids = list(shop.orders)
    shop.store_raw(ids[2], origin="")
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    assert await run_import(db, settings, run_id, import_page_size=2) is ImportStatus.DONE

    stored = await _stored_orders(db, installation_id)
    assert sorted(stored) == sorted(i for i in ids if i != ids[2])
    async with db.session() as session:
        [failure] = await failures_of(session, run_id)
    assert failure.object_id == ids[2]
    assert SALEOR_ORIGIN_ERROR in failure.message
    run = await get_run(db, run_id)
    assert run.failed == 1
    orders = next(r for r in run.resources.items() if r[0] == "orders")[1]
    assert orders["processed"] == len(ids) - 1
    assert orders["finished"]


async def test_an_object_saleor_gives_partly_is_imported_and_listed(
    saleor: Any, db: Database, settings: Settings
) -> None:
    """A non-null field failing under a nullable one (an address's country) nulls only
    that parent: the list comes, the order is folded, the error is listed on it."""
    shop = history(customers=1, guest_orders=2)
    ids = list(shop.orders)
    address = dict(shop.orders[ids[1]]["shippingAddress"])
    address["country"] = {"code": None, "country": None}
    shop.store_raw(ids[1], shippingAddress=address)
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    assert await run_import(db, settings, run_id) is ImportStatus.DONE

    assert await count(db, Order, installation_id) == len(ids)
    async with db.session() as session:
        [failure] = await failures_of(session, run_id)
    assert failure.object_id == ids[1]
    assert "shippingAddress.country" in failure.message


async def test_an_object_failing_on_two_fields_is_read_without_both(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop = history(customers=1, guest_orders=2)
    ids = list(shop.orders)
    shop.store_raw(ids[1], origin="", status="")
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    assert await run_import(db, settings, run_id) is ImportStatus.DONE

    stored = await _stored_orders(db, installation_id)
    assert sorted(stored) == sorted(ids)
    async with db.session() as session:
        [failure] = await failures_of(session, run_id)
    assert failure.object_id == ids[1]
    assert "OrderOriginEnum" in failure.message
    assert "OrderStatus" in failure.message
    assert failure.message.endswith("(imported without them)")
