"""Reading customers: the card, lists with filters, search, sorting and cursors, and the
statement count of the card staying constant whatever the list sizes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine

from plugin.api.context import CURRENT
from plugin.api.ids import to_global_id
from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Message
from plugin.profiles.models import Profile
from plugin.segments.membership import refresh_installation
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp

CARD = """
query Card($id: ID!) {
  customer(id: $id) {
    id email firstName tags ordersCount paidOrdersCount
    totalSpent { amount currency } averageOrderValue { amount currency }
    firstOrderAt lastOrderAt rfm { cell } score prediction { pAlive }
    consent { email sms contacts { address status } }
    segments { segment { slug name memberCount } since why }
    orders(first: 20) { pageInfo { hasNextPage } edges { cursor node {
      id number total { amount } lines { productName quantity } } } }
    checkouts { id state total { amount } }
    timeline(first: 20) { edges { node { kind summary occurredAt } } }
    notes { text }
    messages(first: 10) { pageInfo { hasNextPage } edges { node { subject state } } }
    shipments(first: 10) { edges { cursor node {
      trackingNumber status checkpoints { status } } } }
  }
}
"""


class StatementCounter:
    """Counts SQL statements run while a GraphQL request is being answered."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        if CURRENT.get() is not None:
            with self.lock:
                self.count += 1


@pytest.fixture
def statements() -> Iterator[StatementCounter]:
    counter = StatementCounter()
    event.listen(Engine, "before_cursor_execute", counter)
    yield counter
    event.remove(Engine, "before_cursor_execute", counter)


async def _refresh(db: Database, installation_id: int) -> None:
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, utcnow(), dialect=db.dialect)


async def test_customer_card(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    pk = await seed_customer(
        db,
        installation_id,
        "ann@example.com",
        orders=3,
        checkouts=1,
        timeline=4,
        messages=2,
        shipments=1,
        tags=("vip",),
    )
    await _refresh(db, installation_id)
    answer = await gql(
        app_server, CARD, {"id": to_global_id("Customer", pk)}, staff_headers(saleor)
    )
    assert answer.status == 200
    assert "errors" not in answer.body, answer.body
    card = answer.data["customer"]
    assert card["email"] == "ann@example.com"
    assert card["tags"] == ["vip"]
    assert card["totalSpent"] == {"amount": "75.0000", "currency": "EUR"}
    assert card["consent"]["email"] == "GRANTED"
    assert [e["node"]["number"] for e in card["orders"]["edges"]] == ["1", "2", "3"]
    assert card["orders"]["edges"][0]["node"]["lines"] == [{"productName": "Mug 0", "quantity": 1}]
    assert [c["state"] for c in card["checkouts"]] == ["OPEN"]
    assert [e["node"]["summary"] for e in card["timeline"]["edges"]][:4] == [
        "event 0",
        "event 1",
        "event 2",
        "event 3",
    ]
    slugs = {s["segment"]["slug"]: s for s in card["segments"]}
    assert "regulars" in slugs  # three paid orders
    why = slugs["regulars"]["why"]
    assert why["holds"] is True
    assert "rule" in why
    assert [e["node"]["subject"] for e in card["messages"]["edges"]] == [
        "We miss you 0",
        "We miss you 1",
    ]
    assert card["messages"]["edges"][0]["node"]["state"] == "SENT"
    (parcel,) = [e["node"] for e in card["shipments"]["edges"]]
    assert parcel["status"] == "IN_TRANSIT"
    assert [c["status"] for c in parcel["checkpoints"]] == ["INFO_RECEIVED", "IN_TRANSIT"]

    by_email = await gql(
        app_server,
        "query($e: String!) { customer(email: $e) { id } }",
        {"e": "ANN@example.com"},
        staff_headers(saleor),
    )
    assert by_email.data["customer"]["id"] == card["id"]


async def test_card_statement_count_is_constant(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Database,
    statements: StatementCounter,
) -> None:
    small = await seed_customer(
        db, installation_id, "s@example.com", orders=1, timeline=1, messages=1, shipments=1
    )
    big = await seed_customer(
        db,
        installation_id,
        "b@example.com",
        orders=15,
        lines=3,
        checkouts=5,
        timeline=20,
        messages=12,
        shipments=4,
    )
    await _refresh(db, installation_id)
    # Warm-up: segment thresholds are cached per process for a while, whoever asks first.
    await gql(app_server, CARD, {"id": to_global_id("Customer", big)}, staff_headers(saleor))
    counts = []
    for pk in (small, big):
        statements.count = 0
        answer = await gql(
            app_server, CARD, {"id": to_global_id("Customer", pk)}, staff_headers(saleor)
        )
        assert "errors" not in answer.body, answer.body
        counts.append(statements.count)
    assert counts[0] == counts[1], counts
    assert counts[1] <= 17, counts


EXPLAINED = """
query($id: ID!) {
  customer(id: $id) {
    score scoreFactors { name meaning value weight points }
    prediction { pAlive explanation }
    segments { why }
    orders(first: 20) { edges { node { number } } }
  }
}
"""


async def test_card_explains_score_and_prediction_in_constant_statements(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Database,
    statements: StatementCounter,
) -> None:
    small = await seed_customer(db, installation_id, "s@example.com", orders=1)
    big = await seed_customer(db, installation_id, "b@example.com", orders=12, lines=2)
    await _refresh(db, installation_id)
    async with unit_of_work(db) as session:
        await session.execute(
            update(Profile)
            .where(Profile.id.in_([small, big]))
            .values(p_alive=0.8, predicted_orders_12m=1.5, score=40)
        )
    await gql(app_server, EXPLAINED, {"id": to_global_id("Customer", big)}, staff_headers(saleor))
    counts, cards = [], []
    for pk in (small, big):
        statements.count = 0
        answer = await gql(
            app_server, EXPLAINED, {"id": to_global_id("Customer", pk)}, staff_headers(saleor)
        )
        assert "errors" not in answer.body, answer.body
        counts.append(statements.count)
        cards.append(answer.data["customer"])
    assert counts[0] == counts[1], counts
    factors = cards[1]["scoreFactors"]
    assert factors
    assert {"name", "meaning", "value", "weight", "points"} <= set(factors[0])
    assert abs(sum(f["weight"] for f in factors) - 1) < 1e-6
    assert all(0 <= f["value"] <= 1 for f in factors)
    explanation = cards[1]["prediction"]["explanation"]
    assert isinstance(explanation, str), explanation
    assert explanation, explanation
    assert not explanation.startswith("No orders"), explanation

    # A page of customers explains every score in the same statements as a page of one.
    page = "query($n: Int!) { customers(first: $n) { nodes { scoreFactors { points } "
    page += "prediction { explanation } } } }"
    sizes = []
    for n in (1, 2):
        statements.count = 0
        answer = await gql(app_server, page, {"n": n}, staff_headers(saleor))
        assert "errors" not in answer.body, answer.body
        sizes.append(statements.count)
    assert sizes[0] == sizes[1], sizes


async def test_list_statement_count_does_not_grow_with_the_page(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Database,
    statements: StatementCounter,
) -> None:
    query = """query($n: Int!) { customers(first: $n) { edges { node {
      email tags consent { email } segments { segment { slug } why }
      spentByCurrency { amount currency } averageCheckByCurrency { amount currency }
      orders(first: 2) { edges { node { number lines { sku } } } }
      timeline(first: 2) { edges { node { kind } } } } } } }"""
    for n in range(6):
        await seed_customer(db, installation_id, f"c{n}@example.com", orders=n % 3, timeline=2)
    await _refresh(db, installation_id)
    counts = []
    for size in (1, 6):
        statements.count = 0
        answer = await gql(app_server, query, {"n": size}, staff_headers(saleor))
        assert "errors" not in answer.body, answer.body
        assert len(answer.data["customers"]["edges"]) == size
        counts.append(statements.count)
    assert counts[0] == counts[1], counts


async def test_pages_follow_cursors_to_the_end(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    for n in range(7):
        await seed_customer(db, installation_id, f"p{n}@example.com", orders=n)
    query = """query($after: String) { customers(first: 3, after: $after,
        sortBy: {field: TOTAL_SPENT, direction: DESC}) {
        totalCount pageInfo { hasNextPage endCursor } nodes { email } } }"""
    seen: list[str] = []
    after = None
    while True:
        answer = await gql(app_server, query, {"after": after}, staff_headers(saleor))
        page = answer.data["customers"]
        assert page["totalCount"] == 7
        seen += [n["email"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"p{n}@example.com" for n in range(6, -1, -1)]


@pytest.mark.parametrize("direction", ["DESC", "ASC"])
@pytest.mark.parametrize("field", ["LAST_ORDER_AT", "SCORE", "ORDERS_COUNT", "CREATED"])
async def test_sorted_pages_put_unknown_values_last(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Database,
    field: str,
    direction: str,
) -> None:
    """Every sort, both ways, page by page: each customer once, those without a value (no
    order yet, no score) after all others, ties broken by id in the same direction."""
    ids = []
    for n in range(7):
        pk = await seed_customer(db, installation_id, f"sorted{n}@example.com", orders=n % 4)
        ids.append(pk)
    async with unit_of_work(db) as session:
        for n, pk in enumerate(ids):
            score = None if n % 3 == 0 else n % 2
            await session.execute(update(Profile).where(Profile.id == pk).values(score=score))
    query = """query($after: String, $sort: CustomerSort) { customers(first: 2, after: $after,
        sortBy: $sort) { pageInfo { hasNextPage endCursor } nodes { id email ordersCount
        lastOrderAt score } } }"""
    sort = {"field": field, "direction": direction}
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        answer = await gql(app_server, query, {"after": after, "sort": sort}, staff_headers(saleor))
        assert "errors" not in answer.body, answer.body
        page = answer.data["customers"]
        seen += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(c["email"] for c in seen) == sorted(f"sorted{n}@example.com" for n in range(7))
    descending = direction == "DESC"
    id_of = {f"sorted{n}@example.com": pk for n, pk in enumerate(ids)}
    column = {"LAST_ORDER_AT": "lastOrderAt", "SCORE": "score", "ORDERS_COUNT": "ordersCount"}

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        if field == "CREATED":
            return (id_of[c["email"]],)
        value = c[column[field]]
        return (value is None, value if value is not None else 0, id_of[c["email"]])

    expected = sorted(seen, key=key)
    if descending:  # values and ids descending, unknown values still last
        known = [c for c in expected if field == "CREATED" or c[column[field]] is not None]
        unknown = [c for c in expected if c not in known]
        expected = known[::-1] + unknown[::-1]
    assert [c["email"] for c in seen] == [c["email"] for c in expected]


async def test_search_filter_and_segment(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    await seed_customer(db, installation_id, "zoe@example.com", first_name="Zoé", tags=("vip",))
    await seed_customer(db, installation_id, "max@example.com", phone="+33612345678", orders=3)
    await seed_customer(db, installation_id, "ann_b@example.com", orders=1)
    await _refresh(db, installation_id)
    headers = staff_headers(saleor)

    async def emails(args: str) -> list[str]:
        query = f"{{ customers({args}) {{ nodes {{ email }} }} }}"
        answer = await gql(app_server, query, None, headers)
        assert "errors" not in answer.body, answer.body
        return sorted(n["email"] for n in answer.data["customers"]["nodes"])

    assert await emails('search: "zo"') == ["zoe@example.com"]
    assert await emails('search: "+3361"') == ["max@example.com"]
    assert await emails('search: "ann_"') == ["ann_b@example.com"]
    assert await emails('search: "%"') == []
    assert await emails('filter: {tags: ["vip"]}') == ["zoe@example.com"]
    assert await emails("filter: {minOrders: 1}") == ["ann_b@example.com", "max@example.com"]
    assert await emails('segment: "regulars"') == ["max@example.com"]
    assert await emails('segment: "no-such-segment"') == []


async def test_page_cap_and_bad_cursor_are_invalid_input(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = staff_headers(saleor)
    too_many = await gql(app_server, "{ customers(first: 101) { nodes { id } } }", None, headers)
    assert too_many.codes == ["INVALID_INPUT"]
    bad = await gql(app_server, '{ customers(after: "nope") { nodes { id } } }', None, headers)
    assert bad.codes == ["INVALID_INPUT"]
    bad_id = await gql(app_server, '{ customer(id: "eA==") { id } }', None, headers)
    assert bad_id.codes == ["INVALID_INPUT"]


async def test_timeline_hides_order_events_without_manage_orders(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    pk = await seed_customer(db, installation_id, "t@example.com", timeline=6)
    query = "query($id: ID!) { customer(id: $id) { timeline { nodes { kind } } } }"
    answer = await gql(
        app_server,
        query,
        {"id": to_global_id("Customer", pk)},
        staff_headers(saleor, ["MANAGE_USERS"]),
    )
    kinds = {n["kind"] for n in answer.data["customer"]["timeline"]["nodes"]}
    assert kinds == {"customer_updated"}


async def test_segments_preview_and_members(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    for n in range(4):
        await seed_customer(db, installation_id, f"m{n}@example.com", orders=n)
    await _refresh(db, installation_id)
    headers = staff_headers(saleor)
    answer = await gql(
        app_server,
        """{ segment(slug: "regulars") { slug summary memberCount rules countHistory { members }
             members(first: 1) { pageInfo { hasNextPage } nodes { email } } }
           segments { slug builtin } }""",
        None,
        headers,
    )
    assert "errors" not in answer.body, answer.body
    segment = answer.data["segment"]
    assert segment["memberCount"] == 1
    assert segment["countHistory"][-1]["members"] == 1
    assert segment["members"]["nodes"] == [{"email": "m3@example.com"}]
    assert all(s["builtin"] for s in answer.data["segments"])

    preview = await gql(
        app_server,
        "query($r: JSON!) { segmentPreview(rules: $r) { count sample { email } } }",
        {"r": {"field": "orders_count", "op": "gte", "value": 2}},
        headers,
    )
    assert preview.data["segmentPreview"]["count"] == 2
    bad = await gql(
        app_server,
        "query($r: JSON!) { segmentPreview(rules: $r) { count } }",
        {"r": {"all": [{"field": "nope", "op": "eq", "value": 1}]}},
        headers,
    )
    assert bad.codes == ["INVALID_INPUT"]
    assert bad.body["errors"][0]["extensions"]["rulePath"].startswith("$")


async def test_messages_and_parcels_page_with_cursors(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    pk = await seed_customer(db, installation_id, "pages@example.com", messages=12, shipments=3)
    query = """
    query($id: ID!, $m: String, $s: String) { customer(id: $id) {
      messages(first: 5, after: $m) { pageInfo { hasNextPage endCursor } nodes { subject } }
      shipments(first: 2, after: $s) { pageInfo { hasNextPage endCursor }
        nodes { trackingNumber } }
    } }
    """
    subjects: list[str] = []
    parcels: list[str] = []
    cursors: dict[str, str | None] = {"m": None, "s": None}
    for _ in range(3):
        answer = await gql(
            app_server,
            query,
            {"id": to_global_id("Customer", pk), **cursors},
            staff_headers(saleor),
        )
        assert "errors" not in answer.body, answer.body
        card = answer.data["customer"]
        subjects += [n["subject"] for n in card["messages"]["nodes"]]
        parcels += [n["trackingNumber"] for n in card["shipments"]["nodes"]]
        cursors = {
            "m": card["messages"]["pageInfo"]["endCursor"],
            "s": card["shipments"]["pageInfo"]["endCursor"],
        }
    assert subjects == [f"We miss you {n}" for n in range(12)]  # newest first, none twice
    assert parcels == [f"TRACK{pk}X{n}" for n in range(3)]
    bad = await gql(
        app_server,
        'query($id: ID!) { customer(id: $id) { messages(after: "nonsense") { nodes { id } } } }',
        {"id": to_global_id("Customer", pk)},
        staff_headers(saleor),
    )
    assert bad.body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_a_message_shows_the_order_it_led_to(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    pk = await seed_customer(db, installation_id, "won@example.com", orders=1, messages=2)
    async with unit_of_work(db) as session:
        order_id = await session.scalar(select(Order.id).where(Order.profile_id == pk))
        first = await session.scalar(
            select(Message.id).where(Message.profile_id == pk).order_by(Message.id).limit(1)
        )
        await session.execute(
            update(Message)
            .where(Message.id == first)
            .values(converted_order_id=order_id, revenue=Decimal("25"), currency="EUR")
        )
    answer = await gql(
        app_server,
        "query($id: ID!) { customer(id: $id) { orders { nodes { id } } "
        "messages { nodes { subject convertedOrderId revenue { amount currency } } } } }",
        {"id": to_global_id("Customer", pk)},
        staff_headers(saleor),
    )
    assert "errors" not in answer.body, answer.body
    card = answer.data["customer"]
    by_subject = {m["subject"]: m for m in card["messages"]["nodes"]}
    won = by_subject["We miss you 0"]
    assert won["convertedOrderId"] == card["orders"]["nodes"][0]["id"]
    assert won["revenue"] == {"amount": "25.0000", "currency": "EUR"}
    assert by_subject["We miss you 1"]["convertedOrderId"] is None
