"""Writing through the API: notes, tags, consent, segments and developer tokens, with
typed errors for bad input, conflicts and missing objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from plugin.api.ids import to_global_id
from plugin.api.models import ApiToken
from plugin.db.engine import Database
from plugin.timeline.models import TimelineEntry
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp

NOTE = """mutation($c: ID!, $t: String!) {
  customerAddNote(customerId: $c, text: $t) { text authorEmail } }"""
TAG = "mutation($c: ID!, $t: [String!]!) { customerTag(customerId: $c, tags: $t) { tags } }"
UNTAG = "mutation($c: ID!, $t: [String!]!) { customerUntag(customerId: $c, tags: $t) { tags } }"
CONSENT = """mutation($c: ID!, $g: Boolean!) { customerSetConsent(customerId: $c, channel: EMAIL,
  granted: $g) { consent { email contacts { address status source } } } }"""
CREATE = """mutation($i: SegmentCreateInput!) { segmentCreate(input: $i) {
  slug name memberCount builtin members { nodes { email } } } }"""
UPDATE = """mutation($s: String!, $i: SegmentUpdateInput!) { segmentUpdate(slug: $s, input: $i) {
  slug name memberCount } }"""
DELETE = "mutation($s: String!) { segmentDelete(slug: $s) { slug } }"


async def test_notes_tags_and_consent(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    pk = await seed_customer(db, installation_id, "n@example.com", orders=1)
    c = to_global_id("Customer", pk)

    note = await gql(app_server, NOTE, {"c": c, "t": " Prefers phone calls "}, headers)
    assert note.data["customerAddNote"] == {
        "text": "Prefers phone calls",
        "authorEmail": "staff@example.com",
    }
    empty = await gql(app_server, NOTE, {"c": c, "t": "  "}, headers)
    assert empty.codes == ["INVALID_INPUT"]
    missing = await gql(app_server, NOTE, {"c": to_global_id("Customer", 10**9), "t": "x"}, headers)
    assert missing.codes == ["NOT_FOUND"]

    tagged = await gql(app_server, TAG, {"c": c, "t": ["wholesale", "vip", "vip"]}, headers)
    assert tagged.data["customerTag"]["tags"] == ["vip", "wholesale"]
    again = await gql(app_server, TAG, {"c": c, "t": ["vip"]}, headers)
    assert again.data["customerTag"]["tags"] == ["vip", "wholesale"]
    untagged = await gql(app_server, UNTAG, {"c": c, "t": ["vip"]}, headers)
    assert untagged.data["customerUntag"]["tags"] == ["wholesale"]
    too_long = await gql(app_server, TAG, {"c": c, "t": ["x" * 65]}, headers)
    assert too_long.codes == ["INVALID_INPUT"]

    withdrawn = await gql(app_server, CONSENT, {"c": c, "g": False}, headers)
    consent = withdrawn.data["customerSetConsent"]["consent"]
    assert consent["email"] == "DENIED"
    assert consent["contacts"][0]["source"] == "api:staff@example.com"

    card = await gql(
        app_server,
        "query($c: ID!) { customer(id: $c) { notes { text } timeline { nodes { kind } } } }",
        {"c": c},
        headers,
    )
    assert card.data["customer"]["notes"] == [{"text": "Prefers phone calls"}]
    kinds = [n["kind"] for n in card.data["customer"]["timeline"]["nodes"]]
    assert "note_added" in kinds
    assert "consent_changed" in kinds
    async with db.session() as session:
        entries = await session.scalars(
            select(TimelineEntry.kind).where(TimelineEntry.profile_id == pk)
        )
        assert "note_added" in set(entries)


async def test_segment_lifecycle(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    await seed_customer(db, installation_id, "one@example.com", orders=1)
    await seed_customer(db, installation_id, "two@example.com", orders=2)
    rule = {"field": "orders_count", "op": "gte", "value": 2}
    created = await gql(
        app_server, CREATE, {"i": {"slug": "loyal", "name": "Loyal", "rules": rule}}, headers
    )
    assert created.data["segmentCreate"] == {
        "slug": "loyal",
        "name": "Loyal",
        "memberCount": 1,
        "builtin": False,
        "members": {"nodes": [{"email": "two@example.com"}]},
    }
    duplicate = await gql(
        app_server, CREATE, {"i": {"slug": "loyal", "name": "Again", "rules": rule}}, headers
    )
    assert duplicate.codes == ["CONFLICT"]
    bad_rule = {"all": [rule, {"field": "orders_count", "op": "between", "value": 3}]}
    invalid = await gql(
        app_server, CREATE, {"i": {"slug": "bad", "name": "Bad", "rules": bad_rule}}, headers
    )
    assert invalid.codes == ["INVALID_INPUT"]
    extensions = invalid.body["errors"][0]["extensions"]
    assert extensions["field"] == "rules"
    assert extensions["rulePath"].startswith("$.all[1]")
    bad_slug = await gql(
        app_server, CREATE, {"i": {"slug": "Not OK", "name": "x", "rules": rule}}, headers
    )
    assert bad_slug.codes == ["INVALID_INPUT"]

    widened = await gql(
        app_server,
        UPDATE,
        {"s": "loyal", "i": {"name": "Buyers", "rules": {**rule, "value": 1}}},
        headers,
    )
    assert widened.data["segmentUpdate"] == {"slug": "loyal", "name": "Buyers", "memberCount": 2}
    unknown = await gql(app_server, UPDATE, {"s": "nope", "i": {"name": "x"}}, headers)
    assert unknown.codes == ["NOT_FOUND"]

    builtin = await gql(app_server, DELETE, {"s": "regulars"}, headers)
    assert builtin.codes == ["CONFLICT"]
    deleted = await gql(app_server, DELETE, {"s": "loyal"}, headers)
    assert deleted.data["segmentDelete"] == {"slug": "loyal"}
    gone = await gql(app_server, '{ segment(slug: "loyal") { slug } }', None, headers)
    assert gone.data == {"segment": None}


async def test_api_token_lifecycle(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    staff = staff_headers(saleor)
    await seed_customer(db, installation_id, "dev@example.com")
    created = await gql(
        app_server,
        """mutation { apiTokenCreate(input: {name: "warehouse", permissions: [MANAGE_USERS]})
           { token apiToken { id name prefix permissions lastUsedAt } } }""",
        None,
        staff,
    )
    body = created.data["apiTokenCreate"]
    token = body["token"]
    assert token.startswith("crm_")
    assert body["apiToken"]["permissions"] == ["MANAGE_USERS"]
    assert token.startswith(body["apiToken"]["prefix"])
    async with db.session() as session:
        rows = list(await session.scalars(select(ApiToken)))
        assert all(token not in (r.token_hash, r.prefix) for r in rows)

    bearer = {"Authorization": f"Bearer {token}"}
    viewer = await gql(app_server, "{ viewer { isApiToken permissions } }", None, bearer)
    assert viewer.data["viewer"] == {"isApiToken": True, "permissions": ["MANAGE_USERS"]}
    customers = await gql(app_server, "{ customers { nodes { email } } }", None, bearer)
    assert customers.data["customers"]["nodes"] == [{"email": "dev@example.com"}]
    orders = await gql(
        app_server, "{ customers { nodes { orders { nodes { number } } } } }", None, bearer
    )
    assert orders.codes == ["FORBIDDEN"]
    wrong_shop = await gql(
        app_server, "{ viewer { email } }", None, {**bearer, "saleor-api-url": "http://x/graphql/"}
    )
    assert wrong_shop.codes == ["UNAUTHENTICATED"]

    listed = await gql(app_server, "{ apiTokens { name lastUsedAt } }", None, staff)
    assert listed.data["apiTokens"][0]["name"] == "warehouse"
    assert listed.data["apiTokens"][0]["lastUsedAt"] is not None

    more = await gql(
        app_server,
        'mutation { apiTokenCreate(input: {name: "x", permissions: [MANAGE_ORDERS]}) { token } }',
        None,
        staff_headers(saleor, ["MANAGE_USERS", "MANAGE_APPS"]),
    )
    assert more.codes == ["FORBIDDEN"]  # a user grants only what they hold

    revoked = await gql(
        app_server,
        "mutation($t: ID!) { apiTokenRevoke(id: $t) { revokedAt } }",
        {"t": body["apiToken"]["id"]},
        staff,
    )
    assert revoked.data["apiTokenRevoke"]["revokedAt"] is not None
    after = await gql(app_server, "{ viewer { email } }", None, bearer)
    assert after.codes == ["UNAUTHENTICATED"]


async def test_api_tokens_cannot_create_tokens(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    created = await gql(
        app_server,
        """mutation { apiTokenCreate(input: {name: "admin",
           permissions: [MANAGE_USERS, MANAGE_APPS]}) { token } }""",
        None,
        staff_headers(saleor),
    )
    bearer = {"authorization-bearer": created.data["apiTokenCreate"]["token"]}
    answer = await gql(
        app_server,
        'mutation { apiTokenCreate(input: {name: "y", permissions: [MANAGE_USERS]}) { token } }',
        None,
        bearer,
    )
    assert answer.codes == ["FORBIDDEN"]


async def test_notes_follow_a_profile_merge(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    from plugin.db.base import utcnow
    from plugin.kit.after_commit import unit_of_work
    from plugin.profiles.merge import merge_profiles
    from plugin.profiles.models import Profile

    headers = staff_headers(saleor)
    first = await seed_customer(db, installation_id, "old@example.com")
    second = await seed_customer(db, installation_id, "new@example.com")
    for pk in (first, second):
        await gql(app_server, NOTE, {"c": to_global_id("Customer", pk), "t": f"on {pk}"}, headers)
    async with unit_of_work(db) as session:
        a, b = await session.get(Profile, first), await session.get(Profile, second)
        assert a is not None
        assert b is not None
        winner = await merge_profiles(session, a, b, utcnow())
        survivor = winner.id
    card = await gql(
        app_server,
        "query($c: ID!) { customer(id: $c) { notes { text } } }",
        {"c": to_global_id("Customer", survivor)},
        headers,
    )
    assert sorted(n["text"] for n in card.data["customer"]["notes"]) == [
        f"on {first}",
        f"on {second}",
    ]
