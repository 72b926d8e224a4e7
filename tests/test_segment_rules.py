"""Segment rules: validation, explanations, and SQL ≡ single-profile evaluation (hypothesis)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import (
    ConsentState,
    Identity,
    IdentityKind,
    Profile,
    ProfileTag,
)
from plugin.segments.evaluate import explain, matches
from plugin.segments.facts import OrderFacts, ProfileFacts, load_facts
from plugin.segments.fields import FIELDS, OPERATORS, FieldKind
from plugin.segments.membership import refresh_together
from plugin.segments.models import Segment, SegmentMembership
from plugin.segments.rules import RuleError, parse_rule
from plugin.segments.sql import members_query
from plugin.segments.thresholds import resolve
from tests.conftest import new_installation

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEFAULT_EXAMPLES = 40
EXAMPLES = int(os.environ.get("CRM_PROPERTY_EXAMPLES", DEFAULT_EXAMPLES))


# -- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        ({"field": "town", "op": "eq", "value": "x"}, "$.field", "unknown field 'town'"),
        ({"field": "city", "op": "gt", "value": "x"}, "$.op", "does not apply to city"),
        ({"field": "total_spent", "op": "gt", "value": "lots"}, "$.value", "not a number"),
        ({"field": "total_spent", "op": "gt", "value": True}, "$.value", "compares with a number"),
        ({"field": "last_order_at", "op": "before", "value": "yesterday"}, "$.value", "ISO 8601"),
        ({"field": "last_order_at", "op": "before", "value": {"days": 3}}, "$.value", "days_ago"),
        ({"field": "city", "op": "in", "value": []}, "$.value", "non-empty list"),
        ({"field": "city", "op": "is_set", "value": "x"}, "$.value", "takes no value"),
        ({"all": []}, "$.all", "non-empty list"),
        ({"any": [{"field": "city", "op": "eq"}]}, "$.any[0].value", "needs a value"),
        ({"every": []}, "$", "unknown rule 'every'"),
        ({"all": [], "any": []}, "$", "exactly one of"),
        ({"ordered": {"at_least": 3, "at_most": 1}}, "$.ordered.at_most", "below at_least"),
        ({"ordered": {"within": 30}}, "$.ordered", "unknown option(s) within"),
        ({"ordered": {"status": "lost"}}, "$.ordered.status", "status is one of"),
        ({"abandoned_checkout": {"quiet_minutes": -1}}, "$.abandoned_checkout.quiet_minutes", ""),
        ({"field": "tags", "op": "has", "value": ""}, "$.value", "a tag is text"),
        ({"in_segment": ""}, "$.in_segment", "key of a segment"),
        ({"top_percent": {"field": "city", "percent": 10}}, "$.top_percent.field", "one of"),
        ({"top_percent": {"field": "total_spent"}}, "$.top_percent.percent", "required"),
        ({"top_percent": {"field": "total_spent", "percent": 120}}, "$.top_percent.percent", ""),
        ({"field": "predicted_next_order_at", "op": "before", "value": {"days": 1}}, "$.value", ""),
        ("city = Paris", "$", "expected an object"),
    ],
)
def test_bad_rules_name_the_path_and_the_problem(raw: Any, path: str, words: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(raw)
    assert caught.value.path == path
    assert words in caught.value.message


def test_deep_or_huge_rules_are_refused() -> None:
    deep: dict[str, Any] = {"field": "city", "op": "is_set"}
    for _ in range(20):
        deep = {"not": deep}
    with pytest.raises(RuleError, match="levels deep"):
        parse_rule(deep)
    with pytest.raises(RuleError, match="at most 200 parts"):
        parse_rule({"any": [{"field": "city", "op": "is_set"}] * 250})


# -- explanation --------------------------------------------------------------------------
def _facts(**attributes: Any) -> ProfileFacts:
    base: dict[str, Any] = {name: None for name in {f.column for f in FIELDS.values()}}
    base.update(attributes)
    orders = (
        OrderFacts("FULFILLED", NOW - timedelta(days=10), True, "FULL", Decimal(0), "AUTUMN", ()),
        OrderFacts("FULFILLED", NOW - timedelta(days=40), True, "FULL", Decimal(0), None, ()),
        OrderFacts("CANCELED", NOW - timedelta(days=5), False, "NONE", Decimal(0), None, ()),
    )
    return ProfileFacts(base, orders, ())


def test_explanation_shows_each_condition_with_the_customers_value() -> None:
    rule = parse_rule(
        {
            "all": [
                {"field": "total_spent", "op": "gte", "value": 500},
                {"ordered": {"at_least": 2, "within_days": 30}},
                {"not": {"field": "city", "op": "eq", "value": "Paris"}},
            ]
        }
    )
    facts = _facts(total_spent=Decimal("640.00"), city="Lyon", last_order_at=NOW)
    explanation = explain(rule, facts, NOW).as_dict()
    assert explanation == {
        "rule": "all of",
        "holds": False,
        "parts": [
            {"rule": "total spent is at least 500", "holds": True, "value": "640.00"},
            {
                "rule": "at least 2 order(s) in the last 30 days",
                "holds": False,
                "value": 1,  # the cancelled order does not count
            },
            {
                "rule": "not",
                "holds": True,
                "parts": [{"rule": "city is Paris", "holds": False, "value": "Lyon"}],
            },
        ],
    }


def test_relative_dates_read_as_days_since() -> None:
    rule = parse_rule({"field": "days_since_last_order", "op": "gte", "value": 90})
    sleeping = _facts(last_order_at=NOW - timedelta(days=120))
    recent = _facts(last_order_at=NOW - timedelta(days=3))
    never = _facts()
    assert matches(rule, sleeping, NOW)
    assert not matches(rule, recent, NOW)
    assert not matches(rule, never, NOW)  # never ordered: not "sleeping"
    assert explain(rule, sleeping, NOW).as_dict() == {
        "rule": "days since last order is at least 90",
        "holds": True,
        "value": 120.0,
    }


# -- SQL and the evaluator agree ------------------------------------------------------------
AGES = [None, 0.01, 0.5, 29.99, 30, 30.01, 89.9, 90, 90.5, 400]


def _ago(days: float | None) -> datetime | None:
    return None if days is None else NOW - timedelta(days=days)


TEXT_VALUES: dict[str, list[str | None]] = {
    "city": [None, "Paris", "Lyon", "paris", "Saint-Étienne", ""],
    "country": [None, "FR", "GB"],
    "utm_source": [None, "google", "newsletter", "google-ads"],
    "email": [None, "ann@example.com", "bob@example.org"],
    "language": [None, "en-US", "fr-FR"],
    "currency": [None, "USD", "EUR"],
    "channel": [None, "default-channel", "wholesale"],
}
TAGS = ["vip", "wholesale"]

orders_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["UNFULFILLED", "FULFILLED", "CANCELED", "DRAFT", "EXPIRED"]),
            "is_paid": st.booleans(),
            "charge_status": st.sampled_from([None, "FULL", "NONE", "OVERCHARGED"]),
            "total_refunded": st.sampled_from([Decimal(0), Decimal("5.00")]),
            "voucher_code": st.sampled_from([None, "", "SALE10"]),
            "age": st.sampled_from([0.5, 29.99, 30, 30.01, 200]),
            "categories": st.lists(st.sampled_from(["Apparel", "Kitchen"]), max_size=2),
        }
    ),
    max_size=3,
)
checkouts_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "state": st.sampled_from(list(CheckoutState)),
            "lines_count": st.sampled_from([0, 2]),
            "minutes": st.sampled_from([10, 59.9, 60, 61, 60 * 30, 60 * 24 * 3]),
        }
    ),
    max_size=2,
)
profile_strategy = st.fixed_dictionaries(
    {
        **{name: st.sampled_from(values) for name, values in TEXT_VALUES.items()},
        "orders_count": st.integers(0, 4),
        "total_spent": st.sampled_from(
            [Decimal(0), Decimal("10.50"), Decimal("100"), Decimal("99.99")]
        ),
        "average_days_between_orders": st.sampled_from([None, 0.1, 7.5, 30.0]),
        "last_order_at": st.sampled_from(AGES),
        "date_joined": st.sampled_from(AGES),
        "is_active": st.sampled_from([None, True, False]),
        "saleor_user_id": st.sampled_from([None, "VXNlcjox"]),
        "average_order_value": st.sampled_from([Decimal(0), Decimal("10.50"), Decimal("100")]),
        "score": st.sampled_from([None, 0, 30, 100]),
        "p_alive": st.sampled_from([None, 0.1, 0.5, 0.99]),
        "predicted_value_12m": st.sampled_from([None, Decimal(0), Decimal("100")]),
        "predicted_next_order_at": st.sampled_from([None, -30, 0.5, 40]),
        "tags": st.lists(st.sampled_from(TAGS), unique=True),
        "consents": st.dictionaries(
            st.sampled_from(["email", "phone"]), st.sampled_from(list(ConsentState))
        ),
        "in_segment": st.booleans(),
        "orders": orders_strategy,
        "checkouts": checkouts_strategy,
    }
)


def _leaf_values(name: str, op: str) -> st.SearchStrategy[Any]:
    kind = FIELDS[name].kind
    if kind is FieldKind.TAGS:
        tag = st.sampled_from([*TAGS, "other"])
        return st.lists(tag, min_size=1, max_size=2) if op != "has" else tag
    if kind is FieldKind.TEXT:
        pool = [v for v in TEXT_VALUES.get(name, ["x"]) if v] or ["x"]
        one = st.sampled_from(pool + ["Par", "goo", "e"])
        if op in ("in", "not_in"):
            return st.lists(one, min_size=1, max_size=3)
        return one
    if kind in (FieldKind.NUMBER, FieldKind.MONEY):
        one = st.sampled_from([0, 1, 2, 7.5, 10.5, 99.99, 100, 0.1, 30])
    elif kind is FieldKind.DAYS:
        one = st.sampled_from([0, 0.5, 30, 90, 365])
    else:  # dates
        one = st.one_of(
            st.sampled_from([{"days_ago": d} for d in (0, 30, 90, 365)]),
            st.sampled_from([{"days_ahead": d} for d in (1, 35)]),
            st.sampled_from(["2026-08-22", (NOW - timedelta(days=30)).isoformat()]),
        )
    if op == "between":
        return st.lists(one, min_size=2, max_size=2)
    return one


FIELD_NAMES = sorted(n for n in FIELDS if n in TEXT_VALUES or FIELDS[n].kind is not FieldKind.TEXT)


@st.composite
def condition(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(FIELD_NAMES))
    op = draw(st.sampled_from(OPERATORS[FIELDS[name].kind]))
    rule: dict[str, Any] = {"field": name, "op": op}
    if op not in ("is_set", "is_not_set", "is_true", "is_false"):
        rule["value"] = draw(_leaf_values(name, op))
    return rule


ordered_rule = st.builds(
    lambda options: {"ordered": options},
    st.fixed_dictionaries(
        {},
        optional={
            "at_least": st.integers(0, 2),
            "within_days": st.sampled_from([30, 90]),
            "status": st.sampled_from(["active", "cancelled", "refunded", "any"]),
            "paid_only": st.booleans(),
            "with_voucher": st.booleans(),
            "category": st.sampled_from(["Apparel", "Kitchen"]),
        },
    ),
)
abandoned_rule = st.builds(
    lambda options: {"abandoned_checkout": options},
    st.fixed_dictionaries(
        {},
        optional={
            "quiet_minutes": st.sampled_from([60, 120]),
            "within_hours": st.sampled_from([24, 48]),
        },
    ),
)
segment_rule = st.builds(lambda key: {"in_segment": key}, st.sampled_from(["seg_a", "gone"]))
top_rule = st.builds(
    lambda field, percent: {"top_percent": {"field": field, "percent": percent}},
    st.sampled_from(["total_spent", "average_order_value", "orders_count"]),
    st.sampled_from([10, 50, 100]),
)
rules_strategy = st.recursive(
    st.one_of(condition(), ordered_rule, abandoned_rule, segment_rule, top_rule),
    lambda children: st.one_of(
        st.builds(lambda rs: {"all": rs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda rs: {"any": rs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda r: {"not": r}, children),
    ),
    max_leaves=6,
)


async def _population(db: Database, people: list[dict[str, Any]]) -> tuple[int, list[int]]:
    installation_id = await new_installation(db)
    ids = []
    related = ("orders", "checkouts", "last_order_at", "tags", "consents", "in_segment")
    async with unit_of_work(db) as session:
        segment = Segment(
            installation_id=installation_id,
            key="seg_a",
            name="A",
            rule={"field": "email", "op": "is_set"},
        )
        session.add(segment)
        for n, person in enumerate(people):
            attributes = {k: v for k, v in person.items() if k not in related}
            attributes["date_joined"] = _ago(person["date_joined"])
            attributes["predicted_next_order_at"] = _ago(person["predicted_next_order_at"])
            profile = Profile(
                installation_id=installation_id,
                last_order_at=_ago(person["last_order_at"]),
                **attributes,
            )
            session.add(profile)
            await session.flush()
            ids.append(profile.id)
            for tag in person["tags"]:
                session.add(
                    ProfileTag(
                        installation_id=installation_id,
                        profile_id=profile.id,
                        tag=tag,
                        created_at=NOW,
                    )
                )
            for kind, state in person["consents"].items():
                session.add(
                    Identity(
                        installation_id=installation_id,
                        profile_id=profile.id,
                        kind=IdentityKind(kind),
                        value=f"{kind}-{n}",
                        marketing_consent=state,
                    )
                )
            if person["in_segment"]:
                session.add(
                    SegmentMembership(
                        installation_id=installation_id,
                        segment_id=segment.id,
                        profile_id=profile.id,
                        since=NOW,
                    )
                )
            for m, spec in enumerate(person["orders"]):
                order = Order(
                    installation_id=installation_id,
                    saleor_id=f"order-{n}-{m}",
                    profile_id=profile.id,
                    status=spec["status"],
                    is_paid=spec["is_paid"],
                    charge_status=spec["charge_status"],
                    total_refunded=spec["total_refunded"],
                    voucher_code=spec["voucher_code"],
                    currency="USD",
                    placed_at=_ago(spec["age"]),
                    source_updated_at=NOW,
                )
                session.add(order)
                await session.flush()
                for k, category in enumerate(spec["categories"]):
                    session.add(
                        OrderLine(
                            installation_id=installation_id,
                            order_id=order.id,
                            saleor_id=f"line-{n}-{m}-{k}",
                            product_name="Thing",
                            sku=f"SKU-{category}",
                            category_name=category,
                            currency="USD",
                        )
                    )
            for m, spec in enumerate(person["checkouts"]):
                changed = NOW - timedelta(minutes=spec["minutes"])
                session.add(
                    Checkout(
                        installation_id=installation_id,
                        saleor_id=f"checkout-{n}-{m}",
                        profile_id=profile.id,
                        currency="USD",
                        state=spec["state"],
                        lines_count=spec["lines_count"],
                        started_at=changed,
                        source_updated_at=changed,
                    )
                )
    return installation_id, ids


@settings(
    # CI runs a fixed set; CRM_PROPERTY_EXAMPLES=1000 explores fresh ones.
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES == DEFAULT_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(profile_strategy, min_size=1, max_size=6),
    raw_rules=st.lists(rules_strategy, min_size=1, max_size=4),
)
async def test_sql_and_evaluator_agree(
    db: Database, people: list[dict[str, Any]], raw_rules: list[Any]
) -> None:
    installation_id, ids = await _population(db, people)
    expected: list[set[int]] = []
    async with db.session() as session:
        profiles = [await session.get(Profile, i) for i in ids]
        facts = {p.id: await load_facts(session, p) for p in profiles if p is not None}
        for raw in raw_rules:
            rule = await resolve(session, installation_id, parse_rule(raw), fresh=True)
            query = members_query(
                rule, installation_id=installation_id, now=NOW, dialect=db.dialect
            )
            in_sql = set(await session.scalars(query))
            in_python = {pid for pid, f in facts.items() if matches(rule, f, NOW)}
            assert in_sql == in_python, (
                raw,
                explain(rule, facts[next(iter(in_sql ^ in_python))], NOW),
            )
            expected.append(in_python)

    # The scheduled refresh evaluates all the rules together (on PostgreSQL in one pass,
    # order conditions from one GROUP BY) and writes only the difference: start every
    # segment with wrong members (every other customer) and it must end exactly right.
    async with unit_of_work(db) as session:
        created = []
        for n, raw in enumerate(raw_rules):
            segment = Segment(
                installation_id=installation_id, key=f"prop-{n}", name=f"Prop {n}", rule=raw
            )
            session.add(segment)
            await session.flush()
            for profile_id in ids[::2]:
                session.add(
                    SegmentMembership(
                        installation_id=installation_id,
                        segment_id=segment.id,
                        profile_id=profile_id,
                        since=NOW,
                    )
                )
            rule = await resolve(session, installation_id, parse_rule(raw), fresh=True)
            created.append((segment, rule))
        await session.flush()
        await refresh_together(session, created, NOW, dialect=db.dialect)
    async with db.session() as session:
        for (segment, _), wanted, raw in zip(created, expected, raw_rules, strict=True):
            members = set(
                await session.scalars(
                    select(SegmentMembership.profile_id).where(
                        SegmentMembership.segment_id == segment.id
                    )
                )
            )
            assert members == wanted, raw
