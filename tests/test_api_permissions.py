"""The permission matrix: every query and mutation × no token / another shop's token /
expired token / each missing permission / the right token, plus tenant isolation: a token
of shop B never reads or changes shop A's data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from plugin.analytics.ad_costs import add_ad_cost
from plugin.api import tokens
from plugin.api.ids import to_global_id
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.segments.models import Segment
from tests.api import ALL_PERMISSIONS, dashboard_headers, expired_headers, gql, seed_customer
from tests.conftest import RunningApp, register
from tests.simulator import SaleorSimulator

USERS, ORDERS, CHECKOUTS, APPS = ALL_PERMISSIONS
SECRET_EMAIL = "secret@shop-a.example"


@dataclass(frozen=True)
class Op:
    name: str
    document: str
    needs: tuple[str, ...]
    # What shop B's valid token gets for shop A's object: an error code, or None when the
    # answer is simply empty of shop A's data.
    foreign: str | None = None


CUSTOMER = "query($c: ID!) { customer(id: $c) { email } }"
OPS = [
    Op("customer", CUSTOMER, (USERS,)),
    Op("customers", "{ customers { nodes { email } totalCount } }", (USERS,)),
    Op(
        "customer.orders",
        "query($c: ID!) { customer(id: $c) { email orders { nodes { number } } } }",
        (USERS, ORDERS),
    ),
    Op(
        "customer.checkouts",
        "query($c: ID!) { customer(id: $c) { email checkouts { state } } }",
        (USERS, CHECKOUTS),
    ),
    Op(
        "customer.shipments",
        "query($c: ID!) { customer(id: $c) { email shipments { nodes { status } } } }",
        (USERS, ORDERS),
    ),
    Op(
        "customer.messages",
        "query($c: ID!) { customer(id: $c) { email messages { nodes { subject } } } }",
        (USERS,),
    ),
    Op("segments", "{ segments { slug name } }", (USERS,)),
    Op("segment", '{ segment(slug: "custom") { slug members { nodes { email } } } }', (USERS,)),
    Op(
        "segmentPreview",
        '{ segmentPreview(rules: {field: "orders_count", op: "gte", value: 0}) '
        "{ count sample { email } } }",
        (USERS,),
    ),
    Op("apiTokens", "{ apiTokens { name } }", (USERS, APPS)),
    Op(
        "analytics",
        '{ analytics(period: {from: "2025-01-01", to: "2030-12-31"}) { funnel { steps '
        "{ key count } } cohorts { size } behaviour { customers } revenueBySource { orders } "
        "ltvBySource { customers } revenueBySegment { slug } rfmRevenue { currency } "
        "roi { source } adCosts { source } } }",
        (ORDERS,),
    ),
    Op(
        "customer.scoreFactors",
        "query($c: ID!) { customer(id: $c) { email scoreFactors { name points } "
        "prediction { explanation } } }",
        (USERS,),
    ),
    Op(
        "customerAddNote",
        'mutation($c: ID!) { customerAddNote(customerId: $c, text: "hi") { text } }',
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "customerTag",
        'mutation($c: ID!) { customerTag(customerId: $c, tags: ["x"]) { tags } }',
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "customerUntag",
        'mutation($c: ID!) { customerUntag(customerId: $c, tags: ["x"]) { tags } }',
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "customerSetConsent",
        "mutation($c: ID!) { customerSetConsent(customerId: $c, channel: EMAIL, granted: false)"
        " { consent { email } } }",
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "customerExport",
        "mutation($c: ID!) { customerExport(id: $c) { document } }",
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "customerMerge",
        "mutation($c: ID!, $d: ID!) { customerMerge(sourceId: $d, targetId: $c, preview: true)"
        " { orders } }",
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "customerAnonymize",
        "mutation($c: ID!) { customerAnonymize(id: $c) { identities } }",
        (USERS,),
        "NOT_FOUND",
    ),
    Op(
        "segmentCreate",
        'mutation { segmentCreate(input: {slug: "made", name: "Made", rules: '
        '{field: "orders_count", op: "gte", value: 1}}) { slug } }',
        (USERS, APPS),
    ),
    Op(
        "segmentUpdate",
        'mutation { segmentUpdate(slug: "custom", input: {name: "Renamed"}) { name } }',
        (USERS, APPS),
        "NOT_FOUND",
    ),
    Op(
        "segmentDelete",
        'mutation { segmentDelete(slug: "custom") { slug } }',
        (USERS, APPS),
        "NOT_FOUND",
    ),
    Op(
        "adCostAdd",
        'mutation { adCostAdd(input: {source: "google", dayFrom: "2026-01-01", '
        'dayTo: "2026-01-31", amount: "10", currency: "EUR"}) { id } }',
        (ORDERS,),
    ),
    Op(
        "adCostDelete",
        "mutation($a: ID!) { adCostDelete(id: $a) }",
        (ORDERS,),
        "NOT_FOUND",
    ),
    Op(
        "apiTokenCreate",
        'mutation { apiTokenCreate(input: {name: "ci", permissions: [MANAGE_USERS]}) '
        "{ token apiToken { name } } }",
        (USERS, APPS),
    ),
    Op(
        "apiTokenRevoke",
        "mutation($t: ID!) { apiTokenRevoke(id: $t) { revokedAt } }",
        (USERS, APPS),
        "NOT_FOUND",
    ),
]


@pytest.fixture
def shop_b(app_server: RunningApp, saleor: Any) -> Iterator[SaleorSimulator]:
    with SaleorSimulator(app_number=7) as other:
        yield other


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
async def test_permission_matrix(
    op: Op,
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    shop_b: SaleorSimulator,
    db: Database,
) -> None:
    assert (await register(app_server, shop_b)).status_code == 200
    customer = await seed_customer(db, installation_id, SECRET_EMAIL, orders=1, checkouts=1)
    duplicate = await seed_customer(db, installation_id, "twin@shop-a.example", orders=1)
    async with unit_of_work(db) as session:
        session.add(
            Segment(
                installation_id=installation_id,
                key="custom",
                name="Custom",
                rule={"field": "orders_count", "op": "gte", "value": 1},
            )
        )
        issued = await tokens.issue(
            session,
            installation_id=installation_id,
            name="existing",
            permissions=[USERS],
            created_by_user_id=None,
            created_by_email=None,
            now=utcnow(),
        )
        cost = await add_ad_cost(
            session,
            installation_id,
            source="google",
            day_from=date(2026, 1, 1),
            day_to=date(2026, 1, 31),
            amount=Decimal(10),
            currency="EUR",
        )
    variables = {
        "a": to_global_id("AdCost", cost.id),
        "c": to_global_id("Customer", customer),
        "d": to_global_id("Customer", duplicate),
        "t": to_global_id("ApiToken", issued.row.id),
    }
    used = {k: v for k, v in variables.items() if f"${k}" in op.document}

    async def ask(headers: dict[str, str]) -> Any:
        return await gql(app_server, op.document, used, headers)

    for label, headers in (
        ("no token", {}),
        (
            "other shop's token",
            {"authorization-bearer": shop_b.make_jwt(), "saleor-api-url": saleor.api_url},
        ),
        ("expired", expired_headers(saleor)),
    ):
        answer = await ask(headers)
        assert answer.status == 200, label
        assert answer.codes == ["UNAUTHENTICATED"], (label, answer.body)
        assert SECRET_EMAIL not in str(answer.body)

    for missing in op.needs:
        held = [p for p in ALL_PERMISSIONS if p != missing]
        answer = await ask(dashboard_headers(saleor, user_permissions=held, permissions=held))
        assert answer.codes == ["FORBIDDEN"], (missing, answer.body)
        assert answer.body["errors"][0]["extensions"]["required"] == [missing]

    foreign = await ask(dashboard_headers(shop_b, user_permissions=ALL_PERMISSIONS))
    assert SECRET_EMAIL not in str(foreign.body)
    if op.foreign is not None:
        assert foreign.codes == [op.foreign], foreign.body
    else:
        assert "errors" not in foreign.body, foreign.body
        assert "Custom" not in str(foreign.body)

    answer = await ask(dashboard_headers(saleor, user_permissions=list(op.needs)))
    assert "errors" not in answer.body, answer.body
    assert answer.data is not None
