"""The static query cost: priced before execution, a typed error above the maximum."""

from __future__ import annotations

from typing import Any

from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from plugin.api.cost import MAX_COST, operation_cost
from plugin.api.schema import schema
from tests.api import gql, staff_headers
from tests.conftest import RunningApp
from tests.test_api_customers import CARD


def cost(document: str, variables: dict[str, Any] | None = None) -> int:
    parsed = parse(document)
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operation_cost(schema._schema, operation, fragments, variables)


def test_each_field_costs_one_and_pages_multiply() -> None:
    assert cost("{ viewer { email permissions } }") == 3
    assert cost("{ customers(first: 10) { nodes { email } } }") == 1 + 10 * 2
    # Left out, `first` is the default page (20); a variable is read from the variables.
    assert cost("{ customers { nodes { email } } }") == 1 + 20 * 2
    doc = "query($n: Int) { customers(first: $n) { nodes { email } } }"
    assert cost(doc, {"n": 50}) == 1 + 50 * 2
    # Above the page cap the page is capped anyway: priced at the cap.
    assert cost("{ customers(first: 100000) { nodes { email } } }") == 1 + 100 * 2
    nested = "{ customers(first: 100) { nodes { orders(first: 100) { nodes { number } } } } }"
    assert cost(nested) == 1 + 100 * (1 + 1 + 100 * 2)
    fragment = "{ customers(first: 5) { nodes { ...F } } } fragment F on Customer { email phone }"
    assert cost(fragment) == 1 + 5 * 3


def test_the_customer_card_and_a_list_page_are_well_under_the_limit() -> None:
    assert cost(CARD, {"id": "x"}) < MAX_COST // 10
    page = "{ customers(first: 100) { nodes { email firstName lastName tags ordersCount } } }"
    assert cost(page) < MAX_COST // 10


async def test_a_costly_query_gets_a_typed_error(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    costly = """{ customers(first: 100) { nodes {
      orders(first: 100) { nodes { number lines { productName quantity } } } } } }"""
    answer = await gql(app_server, costly, headers=staff_headers(saleor))
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == ["INVALID_INPUT"]
    extensions = answer.body["errors"][0]["extensions"]
    assert extensions["maxCost"] == MAX_COST
    assert extensions["cost"] > MAX_COST
    # Validation still comes first: an invalid document is not priced.
    invalid = await gql(app_server, "{ customers { nope } }", headers=staff_headers(saleor))
    assert invalid.codes == ["INVALID_INPUT"]
    assert "cost" not in invalid.body["errors"][0]["extensions"]
