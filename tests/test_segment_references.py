"""Segments that depend on other segments or on the whole base: `in_segment`,
`top_percent` (big spenders), one segment per first-touch source, tags and consent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile, ProfileTag
from plugin.segments.builtin import ensure_builtin_segments
from plugin.segments.fields import FIELDS
from plugin.segments.membership import (
    check_references,
    reevaluate_profiles,
    refresh_installation,
)
from plugin.segments.models import Segment, SegmentMembership
from plugin.segments.rules import RuleError, TopPercent, changes_with_time, parse_rule
from plugin.segments.thresholds import book_key, compute_many, thresholds
from tests.conftest import new_installation


async def _members(db: Database, installation_id: int, key: str) -> set[str]:
    async with db.session() as session:
        return set(
            await session.scalars(
                select(Profile.email)
                .join(SegmentMembership, SegmentMembership.profile_id == Profile.id)
                .join(Segment, Segment.id == SegmentMembership.segment_id)
                .where(Segment.installation_id == installation_id, Segment.key == key)
            )
        )


def _buyer(installation_id: int, n: int, **extra: object) -> Profile:
    now = utcnow()
    values: dict[str, object] = {
        "installation_id": installation_id,
        "email": f"b{n}@example.com",
        "orders_count": 1,
        "paid_orders_count": 1,
        "currency": "USD",
        "total_spent": Decimal(10 * n),
        "average_order_value": Decimal(10 * n),
        "first_order_at": now - timedelta(days=5),
        "last_order_at": now - timedelta(days=5),
    }
    values.update(extra)
    return Profile(**values)


async def test_a_segment_of_a_segment_follows_in_the_same_pass(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        # Created before the segment it refers to: the order of evaluation must not matter.
        session.add(
            Segment(
                installation_id=installation_id,
                key="tagged-vip",
                name="Tagged VIP",
                rule={
                    "all": [
                        {"in_segment": "vip-tag"},
                        {"field": "city", "op": "eq", "value": "Paris"},
                    ]
                },
            )
        )
        await session.flush()
        session.add(
            Segment(
                installation_id=installation_id,
                key="vip-tag",
                name="VIP tag",
                rule={"field": "tags", "op": "has", "value": "vip"},
            )
        )
        ann = _buyer(installation_id, 1, city="Paris")
        session.add(ann)
        await session.flush()
        session.add(
            ProfileTag(
                installation_id=installation_id, profile_id=ann.id, tag="vip", created_at=now
            )
        )
    async with unit_of_work(db) as session:
        await reevaluate_profiles(session, installation_id, [ann.id], now)
    assert await _members(db, installation_id, "tagged-vip") == {"b1@example.com"}

    async with unit_of_work(db) as session:  # the tag goes: both segments empty in one refresh
        await session.execute(delete(ProfileTag))
    async with unit_of_work(db) as session:
        changes = await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert changes["vip-tag"].left == [ann.id]
    assert changes["tagged-vip"].left == [ann.id]


async def test_references_must_exist_and_never_go_round(db: Database) -> None:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        session.add(
            Segment(installation_id=installation_id, key="a", name="A", rule={"in_segment": "b"})
        )
        session.add(
            Segment(
                installation_id=installation_id,
                key="b",
                name="B",
                rule={"field": "city", "op": "is_set"},
            )
        )
    async with db.session() as session:
        await check_references(session, installation_id, "c", parse_rule({"in_segment": "a"}))
        with pytest.raises(RuleError, match="not a segment"):
            await check_references(session, installation_id, "c", parse_rule({"in_segment": "zz"}))
        with pytest.raises(RuleError, match="b → a → b"):
            await check_references(session, installation_id, "b", parse_rule({"in_segment": "a"}))
        with pytest.raises(RuleError, match="refer to each other"):
            await check_references(
                session, installation_id, "self", parse_rule({"not": {"in_segment": "self"}})
            )


async def test_big_spenders_are_the_top_tenth_by_average_check_per_currency(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
        session.add_all(_buyer(installation_id, n) for n in range(1, 21))  # 10 … 200 USD
        session.add_all(  # a small EUR base has its own top
            _buyer(installation_id, 100 + n, currency="EUR", average_order_value=Decimal(n))
            for n in range(1, 4)
        )
        session.add(_buyer(installation_id, 999, orders_count=0, average_order_value=Decimal(0)))
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert await _members(db, installation_id, "big_spenders") == {
        "b19@example.com",
        "b20@example.com",
        "b103@example.com",
    }


async def test_each_first_touch_source_gets_a_segment(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
        session.add(_buyer(installation_id, 1, utm_source="Google Ads"))
        session.add(_buyer(installation_id, 2, utm_source="newsletter"))
        session.add(_buyer(installation_id, 3))
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert await _members(db, installation_id, "source-google-ads") == {"b1@example.com"}
    assert await _members(db, installation_id, "source-newsletter") == {"b2@example.com"}
    assert await _members(db, installation_id, "source-direct") == {"b3@example.com"}
    async with db.session() as session:
        names = set(await session.scalars(select(Segment.name).where(Segment.key.like("source-%"))))
    assert {"Source: Google Ads", "Source: newsletter", "Source: direct"} <= names


async def test_consent_means_an_identity_of_that_kind_said_yes(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        session.add(
            Segment(
                installation_id=installation_id,
                key="mailable",
                name="Mailable",
                rule={"field": "email_consent", "op": "is_true"},
            )
        )
        people = [_buyer(installation_id, n) for n in range(3)]
        session.add_all(people)
        await session.flush()
        for person, kind, state in (
            (people[0], IdentityKind.EMAIL, ConsentState.GRANTED),
            (people[1], IdentityKind.EMAIL, ConsentState.DENIED),
            (people[2], IdentityKind.PHONE, ConsentState.GRANTED),
        ):
            session.add(
                Identity(
                    installation_id=installation_id,
                    profile_id=person.id,
                    kind=kind,
                    value=f"{kind}-{person.id}",
                    marketing_consent=state,
                )
            )
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert await _members(db, installation_id, "mailable") == {"b0@example.com"}


@pytest.mark.parametrize(
    ("raw", "timely"),
    [
        ({"field": "paid_orders_count", "op": "gte", "value": 3}, False),
        ({"field": "days_since_last_order", "op": "gte", "value": 90}, True),
        ({"field": "first_order_at", "op": "after", "value": {"days_ago": 30}}, True),
        ({"field": "first_order_at", "op": "after", "value": "2026-01-01"}, False),
        ({"field": "rfm_cell", "op": "eq", "value": "Champions"}, True),
        ({"ordered": {"at_least": 2, "with_voucher": True}}, False),
        ({"ordered": {"at_least": 2, "within_days": 30}}, True),
        ({"not": {"abandoned_checkout": {}}}, True),
        ({"all": [{"field": "city", "op": "eq", "value": "Rome"}, {"in_segment": "vip"}]}, True),
        ({"top_percent": {"field": "total_spent", "percent": 5}}, True),
    ],
)
def test_rules_that_can_flip_without_an_event_are_known(raw: object, timely: bool) -> None:
    assert changes_with_time(parse_rule(raw)) is timely


async def test_the_minute_refresh_skips_rules_only_folds_can_change(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
        buyer = _buyer(installation_id, 1, paid_orders_count=3, orders_count=3)
        session.add(buyer)
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert "b1@example.com" in await _members(db, installation_id, "regulars")
    async with unit_of_work(db) as session:  # changed behind the folds' back
        await session.execute(
            update(Profile).where(Profile.id == buyer.id).values(paid_orders_count=1)
        )
    later = now + timedelta(minutes=1)
    async with unit_of_work(db) as session:
        minute = await refresh_installation(session, installation_id, later, dialect=db.dialect)
    assert "regulars" not in minute  # not re-evaluated: folds keep it current
    assert "sleeping" in minute  # time-driven: always
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, later, dialect=db.dialect, full=True)
    assert "b1@example.com" not in await _members(db, installation_id, "regulars")


async def test_thresholds_computed_together_equal_those_computed_one_by_one(
    db: Database,
) -> None:
    """A whole-shop refresh ranks the base once per field for every percent and currency
    (PostgreSQL); each must equal the one-rule look-up, ties and tiny bases included."""
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        session.add_all(
            _buyer(
                installation_id,
                n,
                currency=("USD", "EUR", "GBP")[n % 3] if n % 7 else "EUR",
                average_order_value=Decimal((n * 37) % 23),  # many ties
                orders_count=1 + n % 4,
                total_spent=Decimal((n * 53) % 101),
            )
            for n in range(1, 48)
        )
        session.add(_buyer(installation_id, 500, currency="JPY"))  # a base of one
    rules = [
        TopPercent(FIELDS[name], percent)
        for name in ("average_order_value", "total_spent", "orders_count")
        for percent in (1, 10, 12.5, 33.3, 50, 99, 100)
    ]
    async with db.session() as session:
        together = await compute_many(session, installation_id, rules)
        for rule in rules:
            alone = await thresholds(session, installation_id, rule, fresh=True)
            assert together[book_key(rule)] == alone, rule
    assert together[("average_order_value", 50)]  # not vacuous: every currency answered
    assert {c for c, _ in together[("total_spent", 10)]} == {"USD", "EUR", "GBP", "JPY"}
