"""Fuzzing POST /graphql (hypothesis): schema-shaped documents with random arguments,
garbage text and odd bodies, with and without a token. Never a 500, always JSON, and
never a masked INTERNAL_ERROR: every failure is a typed answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.api.ids import to_global_id
from plugin.api.schema import schema
from tests.api import staff_headers
from tests.conftest import RunningApp

EXAMPLES = 100
SCHEMA = schema._schema
CODES = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "INVALID_INPUT", "CONFLICT"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


@st.composite
def literal(draw: st.DrawFn, kind: Any) -> str:
    named = get_named_type(kind)
    if isinstance(named, GraphQLEnumType):
        return str(draw(st.sampled_from([*named.values, "NOPE"])))
    if isinstance(named, GraphQLInputObjectType):
        return "{}"
    if isinstance(named, GraphQLScalarType) and named.name == "Int":
        return str(draw(st.integers(-5, 300) | st.just(2**40)))
    if isinstance(named, GraphQLScalarType) and named.name == "Boolean":
        return draw(st.sampled_from(["true", "false"]))
    if isinstance(named, GraphQLScalarType) and named.name == "ID":
        pk = draw(st.integers(0, 10**6))
        kind_name = draw(st.sampled_from(["Customer", "ApiToken", "Nope"]))
        return json.dumps(to_global_id(kind_name, pk))
    return json.dumps(draw(st.text(max_size=10)))


@st.composite
def selection(draw: st.DrawFn, parent: Any, depth: int) -> str:
    fields = parent.fields
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4, unique=True))
    parts = []
    for name in names:
        field = fields[name]
        args = [
            f"{arg_name}: {draw(literal(arg.type))}"
            for arg_name, arg in field.args.items()
            if isinstance(arg.type, GraphQLNonNull) or draw(st.booleans())
        ]
        text = name + (f"({', '.join(args)})" if args else "")
        named = get_named_type(field.type)
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            text += (
                " { " + (draw(selection(named, depth + 1)) if depth < 4 else "__typename") + " }"
            )
        parts.append(text)
    return " ".join(parts)


@st.composite
def schema_documents(draw: st.DrawFn) -> str:
    mutation = draw(st.booleans())
    root = SCHEMA.mutation_type if mutation else SCHEMA.query_type
    assert root is not None
    body = draw(selection(root, 0))
    return ("mutation " if mutation else "") + "{ " + body + " }"


garbage = st.text(max_size=60) | st.sampled_from(
    ["{", "{ customers(first: ) }", "query { ...F }", "{ __schema { types { name } } }", "}}}"]
)
documents = schema_documents() | garbage
variables = st.none() | st.dictionaries(st.sampled_from(["id", "c", "first", "x"]), json_values)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(st.binary(max_size=40))
    if shape == 1:
        return json.dumps(draw(json_values)).encode()
    payload: dict[str, Any] = {"query": draw(documents), "variables": draw(variables)}
    if draw(st.booleans()):
        payload["operationName"] = draw(st.none() | st.text(max_size=5))
    return json.dumps(payload).encode()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies(), authenticated=st.booleans())
async def test_graphql_endpoint_never_fails_untyped(
    app_server: RunningApp, saleor: Any, installation_id: int, body: bytes, authenticated: bool
) -> None:
    headers = {"content-type": "application/json"}
    if authenticated:
        headers.update(staff_headers(saleor))
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code in (200, 400, 413), (response.status_code, body)
    answer = response.json()
    assert isinstance(answer, dict)
    for error in answer.get("errors", []):
        assert error["extensions"]["code"] in CODES, (body, error)
