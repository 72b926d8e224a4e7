"""Merging two customers by hand: a preview that changes nothing, then the merge with the
survivor's figures and segments recomputed; refusals for different Saleor users and shops."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from plugin.api.ids import to_global_id
from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.notes.models import Note
from plugin.profiles.models import Profile
from plugin.segments.models import Segment, SegmentMembership
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp, new_installation

MERGE = """mutation($s: ID!, $t: ID!, $p: Boolean) {
  customerMerge(sourceId: $s, targetId: $t, preview: $p) {
    preview orders checkouts identities notes tags
    fields { field value fromSource }
    customer { id email firstName ordersCount tags segments { segment { slug } } } } }"""


async def _set(db: Database, pk: int, **values: Any) -> None:
    async with unit_of_work(db) as session:
        profile = await session.get(Profile, pk)
        assert profile is not None
        for name, value in values.items():
            setattr(profile, name, value)


async def test_preview_then_merge(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    now = utcnow()
    source = await seed_customer(
        db, installation_id, "dup@example.com", orders=2, checkouts=1, tags=("vip", "b2b")
    )
    target = await seed_customer(db, installation_id, "main@example.com", orders=1, tags=("vip",))
    await _set(
        db,
        source,
        first_name="Newer",
        field_times={"first_name": now.isoformat(), "email": (now - timedelta(days=9)).isoformat()},
    )
    await _set(
        db,
        target,
        first_name="Older",
        field_times={
            "first_name": (now - timedelta(days=5)).isoformat(),
            "email": (now - timedelta(days=1)).isoformat(),
        },
    )
    async with unit_of_work(db) as session:
        session.add(Note(installation_id=installation_id, profile_id=source, text="hi"))
        session.add(
            Segment(
                installation_id=installation_id,
                key="loyal",
                name="Loyal",
                rule={"field": "orders_count", "op": "gte", "value": 3},
            )
        )
    s, t = to_global_id("Customer", source), to_global_id("Customer", target)

    preview = await gql(app_server, MERGE, {"s": s, "t": t}, headers)
    assert "errors" not in preview.body, preview.body
    plan = preview.data["customerMerge"]
    assert plan["preview"] is True
    assert (plan["orders"], plan["checkouts"], plan["identities"], plan["notes"], plan["tags"]) == (
        2,
        1,
        1,
        1,
        1,
    )
    fields = {f["field"]: f for f in plan["fields"]}
    assert fields["first_name"] == {"field": "first_name", "value": "Newer", "fromSource": True}
    assert fields["email"] == {"field": "email", "value": "main@example.com", "fromSource": False}
    assert plan["customer"]["ordersCount"] == 1
    async with db.session() as session:
        assert await session.get(Profile, source) is not None

    merged = await gql(app_server, MERGE, {"s": s, "t": t, "p": False}, headers)
    assert "errors" not in merged.body, merged.body
    survivor = merged.data["customerMerge"]["customer"]
    assert survivor["id"] == t
    assert survivor["firstName"] == "Newer"
    assert survivor["email"] == "main@example.com"
    assert survivor["ordersCount"] == 3
    assert survivor["tags"] == ["b2b", "vip"]
    assert "loyal" in [m["segment"]["slug"] for m in survivor["segments"]]
    async with db.session() as session:
        assert await session.get(Profile, source) is None
        moved = await session.scalar(
            select(func.count()).select_from(Order).where(Order.profile_id == target)
        )
        assert moved == 3
        loyal = await session.scalar(select(Segment).where(Segment.key == "loyal"))
        assert loyal is not None
        members = await session.scalar(
            select(func.count())
            .select_from(SegmentMembership)
            .where(SegmentMembership.segment_id == loyal.id)
        )
        assert loyal.member_count == members == 1

    gone = await gql(app_server, MERGE, {"s": s, "t": t, "p": False}, headers)
    assert gone.codes == ["NOT_FOUND"]


async def test_merge_refusals(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    a = await seed_customer(db, installation_id, "user-a@example.com")
    b = await seed_customer(db, installation_id, "user-b@example.com")
    await _set(db, a, saleor_user_id="VXNlcjox")
    await _set(db, b, saleor_user_id="VXNlcjoy")
    elsewhere = await seed_customer(db, await new_installation(db), "far@example.com")
    ga, gb = to_global_id("Customer", a), to_global_id("Customer", b)

    different = await gql(app_server, MERGE, {"s": ga, "t": gb, "p": True}, headers)
    assert different.codes == ["CONFLICT"]
    foreign = await gql(
        app_server, MERGE, {"s": to_global_id("Customer", elsewhere), "t": ga}, headers
    )
    assert foreign.codes == ["NOT_FOUND"]
    assert foreign.body["errors"][0]["extensions"]["field"] == "sourceId"
    itself = await gql(app_server, MERGE, {"s": ga, "t": ga}, headers)
    assert itself.codes == ["INVALID_INPUT"]
    forbidden = await gql(
        app_server, MERGE, {"s": ga, "t": gb}, staff_headers(saleor, ["MANAGE_ORDERS"])
    )
    assert forbidden.codes == ["FORBIDDEN"]
