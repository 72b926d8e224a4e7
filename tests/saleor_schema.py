"""Saleor's own GraphQL schema (../shared/saleor/schema.graphql), built once per run."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from graphql import GraphQLSchema, build_schema

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(
    os.environ.get("SALEOR_SCHEMA_PATH", REPO.parent / "shared" / "saleor" / "schema.graphql")
)


@cache
def saleor_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_PATH.read_text())
