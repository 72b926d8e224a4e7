"""Importing a shop's history from Saleor: every list folded through the webhook folds,
newest state kept, nothing twice, resumable, patient with throttling, failures listed."""

from __future__ import annotations

import copy
import json
from typing import Any

from sqlalchemy import func, select

from plugin.commerce.models import Checkout, Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.importer import service
from plugin.importer.models import ImportFailure, ImportRun, ImportStatus, StaleFigures
from plugin.importer.progress import progress_of
from plugin.importer.service import failures_of, start_import
from plugin.importer.source import Page, Resource, SaleorPages
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.aggregates import recompute
from plugin.profiles.models import Profile
from plugin.profiles.privacy import anonymize_profile
from plugin.saleor.client import SaleorError
from plugin.saleor.installations import uninstall
from plugin.segments.builtin import ensure_builtin_segments
from plugin.segments.membership import refresh_installation
from plugin.segments.models import Segment, SegmentMembership
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry
from tests.conftest import RunningApp, eventually, register
from tests.importing import count, get_run, queue_run, run_import, shop_installation
from tests.importing import shop_with_history as history


async def _profile(db: Database, installation_id: int, email: str) -> Profile:
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id, Profile.email == email
            )
        )
    assert profile is not None, email
    return profile


def _requests_for(saleor: Any, operation: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r["body"]) for r in saleor.graphql_requests]
    return [b for b in bodies if f"query {operation}(" in b["query"]]


async def test_import_folds_customers_checkouts_and_orders(
    saleor: Any, db: Database, settings: Settings
) -> None:
    saleor.shop = history(customers=3, guest_orders=2)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    assert await run_import(db, settings, run_id, import_page_size=2) is ImportStatus.DONE

    assert saleor.invalid_queries == []
    assert await count(db, Order, installation_id) == 5
    assert await count(db, Checkout, installation_id) == 1
    # 3 customers, 2 guests and the e-mail of the open cart.
    assert await count(db, Profile, installation_id) == 6
    buyer = await _profile(db, installation_id, "buyer0@example.com")
    assert (buyer.first_name, buyer.orders_count, buyer.paid_orders_count) == ("Ann0", 1, 1)
    assert (await _profile(db, installation_id, "guest1@example.com")).orders_count == 1
    run = await get_run(db, run_id)
    progress = progress_of(run)
    assert (progress.processed, progress.total, progress.percent) == (9, 9, 100.0)
    assert progress.eta_seconds == 0.0
    assert run.finished_at is not None
    assert [r.total for r in progress.resources] == [3, 1, 5]
    # Pages of two: customers 2+1, checkouts 1, orders 2+2+1.
    assert len(_requests_for(saleor, "ImportOrders")) == 3
    async with db.session() as session:
        placed = await session.scalar(
            select(func.count()).where(
                TimelineEntry.installation_id == installation_id,
                TimelineEntry.kind == "order_created",
            )
        )
    assert placed == 5


async def test_newest_state_wins_and_a_second_import_adds_nothing(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop = history(customers=2, guest_orders=0)
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    order_id = next(iter(o for o in shop.orders.values() if not o["isPaid"]))["id"]
    stale = copy.deepcopy(shop.orders[order_id])
    # A webhook brings the order paid; the import then reads an older snapshot of it
    # (a page fetched before the payment).
    for event in shop.pay_order(order_id):
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)
    shop.orders[order_id] = stale

    first = await queue_run(db, installation_id)
    assert await run_import(db, settings, first) is ImportStatus.DONE
    async with db.session() as session:
        order = await session.scalar(
            select(Order).where(
                Order.installation_id == installation_id, Order.saleor_id == order_id
            )
        )
        assert order is not None
        assert order.is_paid
        entries = await session.scalar(
            select(func.count()).where(TimelineEntry.installation_id == installation_id)
        )
    counts = [await count(db, m, installation_id) for m in (Order, Profile, Checkout)]

    second = await queue_run(db, installation_id)
    assert second != first  # a finished run is not reopened: a new one starts
    assert await run_import(db, settings, second) is ImportStatus.DONE
    assert [await count(db, m, installation_id) for m in (Order, Profile, Checkout)] == counts
    async with db.session() as session:
        again = await session.scalar(
            select(func.count()).where(TimelineEntry.installation_id == installation_id)
        )
    assert again == entries


async def _outcome(db: Database, settings: Settings, run_id: int, **options: Any) -> ImportStatus:
    """What running the queued run leads to: `run_import`'s answer, or, when the app's own
    worker took the run first (it re-drives queued runs), the state that worker leaves."""
    outcome = await run_import(db, settings, run_id, **options)
    if outcome is not ImportStatus.RUNNING:
        return outcome

    async def settled() -> ImportStatus | None:
        status = (await get_run(db, run_id)).status
        return None if status in (ImportStatus.QUEUED, ImportStatus.RUNNING) else status

    return await eventually(settled, timeout=60)


async def test_a_run_resumes_at_its_stored_cursor(
    saleor: Any, db: Database, settings: Settings
) -> None:
    saleor.shop = history(customers=5, guest_orders=0)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    # A slice that ends after its first page (as a worker's time budget does).
    status = await run_import(db, settings, run_id, import_page_size=2, max_seconds=0)
    assert status is ImportStatus.QUEUED
    run = await get_run(db, run_id)
    assert run.processed == 2
    assert run.resources["customers"]["cursor"]

    # Saleor fails the next request outright: the run stops, its cursor kept.
    saleor.refusals.append((500, None))
    assert await _outcome(db, settings, run_id, import_page_size=2) is ImportStatus.FAILED
    failed = await get_run(db, run_id)
    assert failed.last_error
    assert "HTTP 500" in failed.last_error
    assert failed.resources["customers"]["cursor"] == run.resources["customers"]["cursor"]

    async with unit_of_work(db) as session:
        resumed = await start_import(session, installation_id, requested_by="test", enqueue=False)
    assert resumed.id == run_id
    assert resumed.status is ImportStatus.QUEUED
    assert await _outcome(db, settings, run_id, import_page_size=2) is ImportStatus.DONE
    assert (await get_run(db, run_id)).processed == 11  # 5 customers, 1 cart, 5 orders
    # The first page of customers was asked for once: later slices started at the cursor.
    first_pages = [
        b for b in _requests_for(saleor, "ImportCustomers") if b["variables"]["after"] is None
    ]
    assert len(first_pages) == 1
    assert await count(db, Profile, installation_id) == 6  # and the cart's e-mail


async def test_throttling_is_waited_out(saleor: Any, db: Database, settings: Settings) -> None:
    saleor.shop = history(customers=1, guest_orders=1)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)
    saleor.refusals.extend([(429, "0"), (503, "0"), (429, "0")])

    assert await run_import(db, settings, run_id) is ImportStatus.DONE
    assert saleor.refusals == []
    assert await count(db, Order, installation_id) == 2


async def test_objects_that_cannot_be_folded_are_listed_with_their_id(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop = history(customers=2, guest_orders=2)
    broken = next(iter(shop.orders))
    shop.orders[broken]["updatedAt"] = "last tuesday"
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)

    assert await run_import(db, settings, run_id) is ImportStatus.DONE
    run = await get_run(db, run_id)
    assert run.failed == 1
    async with db.session() as session:
        failures = await failures_of(session, run_id)
    assert [(f.resource, f.object_id) for f in failures] == [("orders", broken)]
    assert "last tuesday" in failures[0].message
    # The rest of the page was folded.
    assert await count(db, Order, installation_id) == 3
    assert await count(db, ImportFailure, installation_id) == 1


async def test_uninstall_cancels_and_a_reinstall_resumes(
    saleor: Any, db: Database, settings: Settings
) -> None:
    saleor.shop = history(customers=2, guest_orders=0)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)
    async with unit_of_work(db) as session:
        await uninstall(session, installation_id, {"app": {"id": saleor.app_id}})
    run = await get_run(db, run_id)
    assert run.status is ImportStatus.CANCELLED
    assert await run_import(db, settings, run_id) is ImportStatus.CANCELLED
    assert await count(db, Order, installation_id) == 0


async def test_install_imports_the_history_while_webhooks_arrive(
    app_server: RunningApp, saleor: Any, db: Database
) -> None:
    shop = history(customers=3, guest_orders=1)
    saleor.shop = shop
    assert (await register(app_server, saleor)).status_code == 200
    unpaid = next(iter(o for o in shop.orders.values() if not o["isPaid"]))["id"]
    for event in shop.pay_order(unpaid):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def finished() -> ImportRun | None:
        async with db.session() as session:
            run = await session.scalar(select(ImportRun).order_by(ImportRun.id.desc()).limit(1))
        return run if run is not None and run.status is ImportStatus.DONE else None

    run = await eventually(finished, timeout=60)
    assert run.requested_by == "install"
    assert await count(db, Order, run.installation_id) == 4

    async def paid() -> bool:
        async with db.session() as session:
            order = await session.scalar(
                select(Order).where(
                    Order.installation_id == run.installation_id, Order.saleor_id == unpaid
                )
            )
        return order is not None and order.is_paid

    assert await eventually(paid)


def test_progress_gives_percentage_and_eta() -> None:
    run = ImportRun(
        id=1,
        installation_id=1,
        status=ImportStatus.RUNNING,
        resources={
            "customers": {"processed": 100, "total": 100, "finished": True},
            "checkouts": {"processed": 0, "total": 0, "finished": True},
            "orders": {"processed": 100, "total": 300},
        },
        busy_seconds=4.0,
        failed=0,
        started_at=utcnow(),
    )
    progress = progress_of(run)
    assert (progress.processed, progress.total) == (200, 400)
    assert progress.percent == 50.0
    assert progress.rate_per_second == 50.0
    assert progress.eta_seconds == 4.0
    run.resources = {"customers": {"processed": 10}}
    unknown = progress_of(run)
    assert unknown.total is None
    assert unknown.percent is None
    assert unknown.eta_seconds is None


async def test_an_erased_persons_orders_are_not_imported_again(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop = history(customers=2, guest_orders=0)
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    assert await run_import(db, settings, await queue_run(db, installation_id)) is (
        ImportStatus.DONE
    )
    async with unit_of_work(db) as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id,
                Profile.email == "buyer1@example.com",
            )
        )
        assert profile is not None
        await anonymize_profile(session, profile, utcnow())
    # Saleor deleted the account; its orders stay in Saleor, naming the e-mail.
    shop.users.pop(shop.user_id("buyer1@example.com"))
    profiles = await count(db, Profile, installation_id)

    assert await run_import(db, settings, await queue_run(db, installation_id)) is (
        ImportStatus.DONE
    )
    assert await count(db, Profile, installation_id) == profiles
    async with db.session() as session:
        found = await session.scalar(
            select(func.count()).where(
                Profile.installation_id == installation_id,
                Profile.email == "buyer1@example.com",
            )
        )
        buyer0 = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id,
                Profile.email == "buyer0@example.com",
            )
        )
    assert found == 0
    assert buyer0 is not None
    assert buyer0.orders_count == 1


async def test_the_rate_counts_the_time_spent_waiting_for_saleor(
    saleor: Any, db: Database, settings: Settings
) -> None:
    """A rate-limited shop: reading pages is most of the time, so the run's rate (and its
    ETA) must count it, or the dashboard would show "0 s left" half-way."""
    saleor.shop = history(customers=4, guest_orders=4)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)
    status = await run_import(
        db, settings, run_id, import_page_size=1, import_requests_per_second=8
    )
    assert status is ImportStatus.DONE
    requests = sum(
        len(_requests_for(saleor, op))
        for op in ("ImportCustomers", "ImportCheckouts", "ImportOrders")
    )
    run = await get_run(db, run_id)
    assert requests >= 8
    # The requests were spaced 1/8 s apart: the run was busy at least that long.
    assert run.busy_seconds >= 0.8 * (requests - 1) / 8


async def test_a_failed_run_still_counts_what_it_folded(
    saleor: Any, db: Database, settings: Settings, monkeypatch: Any
) -> None:
    """The figures of the customers an import touched are computed once, when the run ends
    — also when it ends in failure, so the card is right before anyone resumes it."""
    saleor.shop = history(customers=3, guest_orders=2)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)
    real_page = SaleorPages.page
    orders_pages = 0

    async def failing_third_orders_page(
        self: SaleorPages, resource: Resource, after: str | None, first: int
    ) -> Page:
        nonlocal orders_pages
        if resource.name == "orders":
            orders_pages += 1
            if orders_pages == 3:
                raise SaleorError("SALEOR_ERROR", "Saleor answered HTTP 502")
        return await real_page(self, resource, after, first)

    monkeypatch.setattr(SaleorPages, "page", failing_third_orders_page)
    status = await run_import(db, settings, run_id, import_page_size=2)

    assert status is ImportStatus.FAILED
    assert await count(db, Order, installation_id) == 4  # two pages of two
    assert await count(db, StaleFigures, installation_id) == 0
    async with db.session() as session:
        ordered = {
            p.email: p.orders_count
            for p in await session.scalars(
                select(Profile).where(
                    Profile.installation_id == installation_id, Profile.orders_count > 0
                )
            )
        }
        placed = await session.scalars(
            select(Order.profile_id).where(Order.installation_id == installation_id)
        )
        assert len(ordered) == len(set(placed)) == 4
    assert set(ordered.values()) == {1}


async def test_the_end_of_an_import_puts_no_segment_moves_on_the_timeline(
    saleor: Any, db: Database, settings: Settings
) -> None:
    """Customers enter segments by what they did before the CRM came: no `segment_entered`
    entries, so flows started by them do not mail the shop's whole past."""
    saleor.shop = history(customers=3, guest_orders=2)
    installation_id = await shop_installation(db, saleor, settings)
    async with unit_of_work(db) as session:  # the segments were computed on the empty shop
        await ensure_builtin_segments(session, installation_id)
        await refresh_installation(session, installation_id, utcnow(), dialect=db.dialect)
    async with db.session() as session:
        computed = await session.scalar(
            select(func.count()).where(
                Segment.installation_id == installation_id, Segment.refreshed_at.is_not(None)
            )
        )
    assert computed

    run_id = await queue_run(db, installation_id)
    assert await run_import(db, settings, run_id) is ImportStatus.DONE

    async with db.session() as session:
        members = await session.scalar(
            select(func.count())
            .select_from(SegmentMembership)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(Segment.installation_id == installation_id, Segment.key == "one_time_buyers")
        )
        moves = await session.scalar(
            select(func.count()).where(
                TimelineEntry.installation_id == installation_id,
                TimelineEntry.kind.in_(("segment_entered", "segment_left")),
            )
        )
    assert members == 1  # buyer0, the one paid order
    assert moves == 0


async def test_figures_settled_in_slices_side_by_side_match_a_fresh_recompute(
    saleor: Any, db: Database, settings: Settings, monkeypatch: Any
) -> None:
    """The end-of-run figures are settled in slices (two transactions at once on
    PostgreSQL, sharing the fold lock): every customer comes out as the webhook code's
    recompute has them, and no mark is left."""
    monkeypatch.setattr(service, "SETTLE_PROFILES", 2)
    saleor.shop = history(customers=5, guest_orders=4)
    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)
    assert await run_import(db, settings, run_id, import_page_size=3) is ImportStatus.DONE
    assert await count(db, StaleFigures, installation_id) == 0

    columns: tuple[str, ...] = ("orders_count", "paid_orders_count", "total_spent")
    columns += ("average_order_value", "first_order_at", "last_order_at", "currency", "channel")
    async with db.session() as session:
        profiles = list(
            await session.scalars(select(Profile).where(Profile.installation_id == installation_id))
        )
        settled = {p.id: tuple(getattr(p, c) for c in columns) for p in profiles}
        for profile in profiles:
            await recompute(session, profile)
        fresh = {p.id: tuple(getattr(p, c) for c in columns) for p in profiles}
        await session.rollback()
    assert len(settled) == 10  # 5 customers (and their carts), 4 guests, 1 cart e-mail
    assert sum(1 for figures in settled.values() if figures[0]) == 9
    assert settled == fresh
