"""The bench's Saleor (bench/saleor_lists.py) speaks the protocol the importer reads:
schema-validated documents, Relay paging with opaque cursors, Saleor's `first` limit, and
nodes of the shape Saleor's schema answers."""

from __future__ import annotations

import json
from typing import Any

from bench.saleor_lists import Lists, templates
from plugin.saleor.client import load_query


def _ask(lists: Lists, field: str, first: int, after: str | None) -> tuple[int, Any]:
    query = load_query(f"import_{field}")
    status, body = lists.answer({"query": query, "variables": {"first": first, "after": after}})
    return status, json.loads(body)


def test_pages_walk_the_whole_list_with_saleors_shapes() -> None:
    lists = Lists(orders=250, customers=60, checkouts=7)
    shapes = templates()
    for field, total in (("orders", 250), ("customers", 60), ("checkouts", 7)):
        seen: list[dict[str, Any]] = []
        after = None
        while True:
            status, body = _ask(lists, field, 100, after)
            assert status == 200
            connection = body["data"][field]
            assert connection["totalCount"] == total
            seen += [edge["node"] for edge in connection["edges"]]
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        assert len(seen) == total
        assert len({node["id"] for node in seen}) == total
        assert all(set(node) == set(shapes[field]) for node in seen)
    order = lists.node("orders", 61)
    assert order["user"]["email"] == order["userEmail"] == "buyer2@example.com"
    assert order["created"] == "2021-01-01T01:01:00Z"


def test_bad_documents_and_oversized_pages_are_refused_as_saleor_does() -> None:
    lists = Lists(orders=5, customers=1, checkouts=0)
    status, raw = lists.answer({"query": "query { orders { nope } }", "variables": {}})
    assert status == 400
    assert json.loads(raw)["errors"]
    status, body = _ask(lists, "orders", 101, None)
    assert status == 200
    assert body["data"]["orders"] is None
    assert "exceeds the limit" in body["errors"][0]["message"]
