"""Saleor's own GraphQL schema (`graphql/saleor/schema.graphql`), built once per run."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from graphql import GraphQLSchema, build_schema

REPO = Path(__file__).resolve().parents[1]
VENDORED_SCHEMA = REPO / "graphql" / "saleor" / "schema.graphql"
WORKSPACE_SCHEMA = REPO.parent / "shared" / "saleor" / "schema.graphql"
SCHEMA_PATH = Path(os.environ.get("SALEOR_SCHEMA_PATH", VENDORED_SCHEMA))
SCHEMA_SHA256 = "36a111ba8f822b25a62fa82df0d7e4477e1aebc611d70adb83f5006a5cf76624"


@cache
def saleor_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_PATH.read_text())
