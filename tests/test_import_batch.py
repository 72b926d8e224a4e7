"""The set-based import fold keeps the webhook folds' semantics: one generated history folded
object by object through the webhook code and page by page through the multi-row path
gives the same rows (profiles, identities, figures, orders, lines, carts, timeline)."""

from __future__ import annotations

import copy
import random
from typing import Any

from graphql import execute_sync, parse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, CheckoutLine, Order, OrderLine
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.importer.bulk import insert_rows
from plugin.importer.figures import settle_stale
from plugin.importer.fold import fold_nodes, fold_nodes_one_by_one
from plugin.importer.items import prepare
from plugin.importer.models import StaleFigures
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Identity, Profile, ProfileTotal
from plugin.saleor.client import load_query
from plugin.saleor.models import Installation
from plugin.timeline.models import TimelineEntry
from tests.importing import LINES
from tests.saleor_schema import saleor_schema
from tests.simulator import FakeShop
from tests.simulator.lists import lists
from tests.simulator.server import global_id

JSON = dict[str, Any]
RESOURCES = ("customers", "checkouts", "orders")
SKIPPED = {"id", "installation_id", "created_at", "updated_at", "recorded_at"}


def listed(shop: FakeShop, field: str) -> list[JSON]:
    """Every object of one of Saleor's lists, as the app's import document reads it."""
    document = parse(load_query(f"import_{field}"))
    nodes: list[JSON] = []
    after = None
    while True:
        result = execute_sync(
            saleor_schema(),
            document,
            root_value=lists(shop),
            variable_values={"first": 100, "after": after},
        )
        assert not result.errors, result.errors
        assert result.data is not None
        connection = result.data[field]
        nodes += [copy.deepcopy(edge["node"]) for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes
        after = connection["pageInfo"]["endCursor"]


def history(seed: int = 8) -> tuple[FakeShop, list[dict[str, list[JSON]]]]:
    """A shop's history listed twice (before and after a round of changes), with the
    cases that matter: guests, registered buyers, repeat orders, two currencies, carts
    completed into orders with UTM tags, consent in metadata, a phone-only buyer, an
    e-mail used by two accounts, gifts (an account ordering under another's e-mail), and
    an account that takes a guest's address as its own (a merge)."""
    rng = random.Random(seed)
    shop = FakeShop()
    users = []
    for n in range(30):
        metadata = {"marketing_consent_email": "true"} if n % 7 == 0 else None
        shop.create_customer(
            f"buyer{n}@example.com",
            first_name=f"Ann{n}",
            last_name="Lee",
            phone="+12025550100" if n % 3 else None,
            metadata=metadata,
        )
        users.append(shop.user_id(f"buyer{n}@example.com"))
    shop.create_order(email="ghost@example.com", lines=LINES)  # becomes buyer29's address
    for n in range(12):
        shop.create_checkout(
            user_id=users[n] if n % 2 else None,
            email=None if n % 2 else f"cart{n}@example.com",
            lines=LINES[: 1 + n % 2],
            metadata={"utm_source": "news", "utm_campaign": f"c{n}"} if n % 3 == 0 else None,
        )
    carts = listed(shop, "checkouts")  # Saleor deletes a cart once it becomes an order
    for n, cid in enumerate(list(shop.checkouts)[:6]):
        order = shop.orders[shop.complete_checkout(cid)[0].object_id]
        if n % 2 == 0:
            order["metadata"] = []  # the order takes its source from the cart
    for n in range(120):
        shop.currency = "EUR" if n % 11 == 0 else "USD"
        kind = rng.random()
        if kind < 0.55:
            shop.create_order(user_id=rng.choice(users), lines=LINES[: 1 + n % 2], paid=n % 2 == 0)
        elif kind < 0.9:
            shop.create_order(email=f"guest{n % 17}@example.com", lines=LINES[1:], paid=n % 3 == 0)
        else:
            shop.create_order(lines=LINES[:1], phone="+12025550142", country="US")
    shop.currency = "USD"
    # Gifts: accounts ordering under another's e-mail, a customer's and a guest's (the
    # orders go to them, the accounts are never merged).
    shop.create_order(user_id=users[1], email="buyer2@example.com", lines=LINES)
    shop.create_order(user_id=users[29], email="ghost@example.com", lines=LINES)
    first = {field: listed(shop, field) for field in RESOURCES} | {"checkouts": carts}
    orders = list(shop.orders)
    for order_id in orders[:10]:
        shop.pay_order(order_id)
    for order_id in orders[10:14]:
        shop.cancel_order(order_id)
    shop.refund_order(orders[0])
    shop.update_customer(users[4], first_name="Renamed")
    # The guest's address becomes buyer29's own: its profile and the account's are merged.
    shop.update_customer(users[29], email="ghost@example.com")
    second = {field: listed(shop, field) for field in RESOURCES}
    # The first listing again: every snapshot in it is older than what is stored.
    return shop, [first, second, first]


async def new_installation(db: Database, name: str) -> int:
    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=f"https://{name}.example.com/graphql/",
            app_id=global_id("App", 42),
            token_encrypted="-",
            jwks={"keys": []},
            installed_at=utcnow(),
        )
        session.add(installation)
        await session.flush()
        return installation.id


async def fold_listing(
    db: Database,
    installation_id: int,
    listing: dict[str, list[JSON]],
    *,
    batch: bool,
    defer_figures: bool = False,
) -> None:
    """Pages of 37 (a page also lists one order twice: the second copy is newer)."""

    async def fold(session: AsyncSession, field: str, page: list[JSON]) -> None:
        if not batch:
            await fold_nodes_one_by_one(session, installation_id, field, page, utcnow())
            return
        # The importer's way when deferring: the nodes read ahead of the fold (`prepare`).
        now = utcnow()
        ahead = [prepare(field, node, now) for node in page] if defer_figures else None
        await fold_nodes(
            session, installation_id, field, page, now, defer_figures=defer_figures, prepared=ahead
        )

    for field in RESOURCES:
        nodes = listing[field]
        for start in range(0, len(nodes), 37):
            page = nodes[start : start + 37]
            if field == "orders" and start == 37:
                newer = copy.deepcopy(page[0])
                newer["updatedAt"] = "2030-01-01T00:00:00+00:00"
                newer["status"] = "CANCELED"
                page = [*page[:5], newer, *page[5:]]
            async with unit_of_work(db) as session:
                await fold(session, field, page)


def _row(obj: Any, **replaced: Any) -> dict[str, Any]:
    columns = obj.__table__.columns.keys()
    row = {c: getattr(obj, c) for c in columns if c not in SKIPPED}
    return row | replaced


async def state(db: Database, installation_id: int) -> dict[str, Any]:
    """Every row the folds write for the shop, with ids replaced by what they stand for."""
    async with db.session() as session:

        async def all_of(model: Any) -> list[Any]:
            return list(
                await session.scalars(select(model).where(model.installation_id == installation_id))
            )

        identities = await all_of(Identity)
        keys: dict[int, tuple[str, ...]] = {}
        for identity in identities:
            keys.setdefault(identity.profile_id, ())
            keys[identity.profile_id] += (f"{identity.kind}:{identity.value}",)
        key = {pid: tuple(sorted(k)) for pid, k in keys.items()}
        profiles = {key.get(p.id, ("?", str(p.id))): _row(p) for p in await all_of(Profile)}
        orders = await all_of(Order)
        order_ids = {o.id: o.saleor_id for o in orders}
        checkouts = await all_of(Checkout)
        checkout_ids = {c.id: c.saleor_id for c in checkouts}
        return {
            "profiles": profiles,
            "identities": sorted(
                (key[i.profile_id], str(i.kind), i.value, str(i.marketing_consent))
                for i in identities
            ),
            "totals": sorted(
                (
                    key[t.profile_id],
                    t.currency,
                    t.orders_count,
                    t.paid_orders_count,
                    t.total_spent,
                    t.average_order_value,
                )
                for t in await all_of(ProfileTotal)
            ),
            "orders": {
                o.saleor_id: _row(o, profile_id=key.get(o.profile_id) if o.profile_id else None)
                for o in orders
            },
            "lines": sorted(
                (
                    order_ids[line.order_id],
                    line.saleor_id,
                    repr(sorted(_row(line, order_id=0).items())),
                )
                for line in await all_of(OrderLine)
            ),
            "checkouts": {
                c.saleor_id: _row(c, profile_id=key.get(c.profile_id) if c.profile_id else None)
                for c in checkouts
            },
            "checkout_lines": sorted(
                (checkout_ids[line.checkout_id], repr(sorted(_row(line, checkout_id=0).items())))
                for line in await all_of(CheckoutLine)
            ),
            "timeline": dict(_entry(t, key[t.profile_id]) for t in await all_of(TimelineEntry)),
        }


def _entry(entry: TimelineEntry, profile: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """A merge's entry names the profiles' ids, which differ between shops by nature."""
    row = _row(entry, profile_id=profile)
    if entry.kind != "profile_merged":
        return entry.dedup_key, row
    row["data"] = {k: v for k, v in (entry.data or {}).items() if k != "merged_profile_id"}
    return ("merge", profile), row | {"dedup_key": "merge", "subject_id": "loser"}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    found = []
    for table in a:
        if isinstance(a[table], dict):
            for k in sorted(set(a[table]) | set(b[table]), key=repr):
                if a[table].get(k) != b[table].get(k):
                    found.append(f"{table} {k}: {a[table].get(k)} != {b[table].get(k)}")
        elif a[table] != b[table]:
            found.append(f"{table} differ: {set(a[table]) ^ set(b[table])}")
    return found[:10]


async def test_set_based_fold_writes_what_the_webhook_folds_write(db: Database) -> None:
    _, listings = history()
    webhook = await new_installation(db, "webhook")
    batch = await new_installation(db, "batch")
    for listing in listings:
        await fold_listing(db, webhook, listing, batch=False)
        await fold_listing(db, batch, listing, batch=True)

    by_webhook, by_batch = await state(db, webhook), await state(db, batch)
    assert differences(by_webhook, by_batch) == []
    # The history exercised what it was built for.
    assert len(by_batch["orders"]) == 129
    assert {o["currency"] for o in by_batch["orders"].values()} == {"USD", "EUR"}
    assert sum(o["status"] == "CANCELED" for o in by_batch["orders"].values()) >= 4
    assert any(c["state"] == "converted" for c in by_batch["checkouts"].values())
    assert any(o["utm_source"] and not o["saleor_metadata"] for o in by_batch["orders"].values())
    ghost = [k for k in by_batch["profiles"] if "email:ghost@example.com" in k]
    assert len(ghost) == 1
    assert any(v.startswith("saleor_user:") for v in ghost[0])
    assert any(key[0] == "merge" for key in by_batch["timeline"])  # the guest's and the account's
    shared = [k for k in by_batch["profiles"] if "email:buyer2@example.com" in k]
    assert len(shared) == 1
    consenting = [i for i in by_batch["identities"] if i[3] == "granted"]
    assert consenting


async def stale_marks(db: Database, installation_id: int) -> int:
    async with db.session() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(StaleFigures)
            .where(StaleFigures.installation_id == installation_id)
        )
    return int(found or 0)


async def test_figures_left_to_the_end_of_the_run_come_out_the_same(db: Database) -> None:
    """An import reads each page ahead of its fold, marks the customers it touches and
    computes their figures once at the end, a few at a time: the result is the webhook
    folds' to the row."""
    _, listings = history()
    webhook = await new_installation(db, "webhook-figures")
    deferred = await new_installation(db, "deferred-figures")
    for listing in listings:
        await fold_listing(db, webhook, listing, batch=False)
        await fold_listing(db, deferred, listing, batch=True, defer_figures=True)

    marked = await stale_marks(db, deferred)
    assert marked > 7  # so the chunks below are several
    async with db.session() as session:
        unsettled = await session.scalar(
            select(func.count())
            .select_from(Profile)
            .where(Profile.installation_id == deferred, Profile.orders_count > 0)
        )
    assert unsettled == 0  # nothing computed yet: the marks are what is left to do
    chunks = 0
    while True:
        async with unit_of_work(db) as session:
            settled = await settle_stale(session, deferred, 7)
        chunks += 1
        if settled < 7:
            break
    assert chunks == marked // 7 + 1
    assert await stale_marks(db, deferred) == 0
    assert differences(await state(db, webhook), await state(db, deferred)) == []


async def test_importing_again_or_after_the_webhooks_adds_nothing(db: Database) -> None:
    shop = FakeShop()
    events = shop.create_customer("ann@example.com", first_name="Ann", phone="+12025550100")
    user_id = shop.user_id("ann@example.com")
    events += shop.create_checkout(user_id=user_id, lines=LINES)
    events += shop.complete_checkout(next(iter(shop.checkouts)))
    events += shop.create_order(email="guest@example.com", lines=LINES, paid=True)
    installation_id = await new_installation(db, "webhooks-first")
    for event in events:
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)
    before = await state(db, installation_id)

    listing = {field: listed(shop, field) for field in RESOURCES}
    for _ in range(2):
        await fold_listing(db, installation_id, listing, batch=True)

    after = await state(db, installation_id)
    assert differences(before, after) == []
    assert len(after["orders"]) == 2
    assert len(after["timeline"]) == len(before["timeline"])


async def test_erased_people_are_not_imported_back(db: Database) -> None:
    shop = FakeShop()
    shop.create_customer("gone@example.com", first_name="Gone")
    user_id = shop.user_id("gone@example.com")
    shop.create_order(user_id=user_id, lines=LINES)
    shop.create_order(email="GONE@example.com", lines=LINES)  # as a guest, other case
    shop.create_order(email="stays@example.com", lines=LINES)
    installation_id = await new_installation(db, "erased")
    for event in shop.delete_customer(user_id):
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)
    listing = {field: listed(shop, field) for field in RESOURCES}
    listing["customers"] = [{**listing["orders"][0]["user"], "dateJoined": None}]
    await fold_listing(db, installation_id, listing, batch=True)

    rows = await state(db, installation_id)
    assert list(rows["orders"]) == [listing["orders"][2]["id"]]
    text = repr(rows).lower()
    assert "gone@example.com" not in text
    assert user_id.lower() not in text


async def test_timeline_rows_whose_key_is_taken_are_left_out(db: Database) -> None:
    """The import's timeline rows go in as new rows (COPY on PostgreSQL) once their keys
    were looked up: one already on file, or taken earlier in the list, is left out, as
    ON CONFLICT DO NOTHING would."""
    installation_id = await new_installation(db, "timeline-keys")
    now = utcnow()

    def row(profile_id: int, key: str, summary: str) -> dict[str, Any]:
        return {
            "installation_id": installation_id,
            "profile_id": profile_id,
            "kind": "order_created",
            "occurred_at": now,
            "dedup_key": key,
            "summary": summary,
            "subject_type": "order",
            "subject_id": key,
            "data": {"summary": summary},
            "recorded_at": now,
        }

    async with unit_of_work(db) as session:
        profile = Profile(installation_id=installation_id, email="keys@example.com")
        session.add(profile)
        await session.flush()
        await insert_rows(session, TimelineEntry, [row(profile.id, "k1", "on file")])
    async with unit_of_work(db) as session:
        listed_rows = [
            row(profile.id, "k1", "again"),
            row(profile.id, "k2", "first"),
            row(profile.id, "k2", "second"),
            row(profile.id, "k3", "new"),
        ]
        await insert_rows(
            session,
            TimelineEntry,
            listed_rows,
            ignore_conflicts_on=["installation_id", "dedup_key"],
        )
        # Nothing new: nothing written, no statement fails.
        await insert_rows(
            session,
            TimelineEntry,
            listed_rows[:1],
            ignore_conflicts_on=["installation_id", "dedup_key"],
        )
    async with db.session() as session:
        found = await session.execute(
            select(TimelineEntry.dedup_key, TimelineEntry.summary)
            .where(TimelineEntry.installation_id == installation_id)
            .order_by(TimelineEntry.dedup_key)
        )
        assert [tuple(r) for r in found] == [("k1", "on file"), ("k2", "first"), ("k3", "new")]
