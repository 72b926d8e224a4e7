"""The one strawberry schema, with its limits: depth, aliases, document size and cost."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.types import ExecutionContext

from plugin.api.cost import MAX_COST, QueryCostLimiter
from plugin.api.errors import ApiError
from plugin.api.mutations.analytics import AnalyticsMutations
from plugin.api.mutations.customers import CustomerMutations
from plugin.api.mutations.importer import ImporterMutations
from plugin.api.mutations.messaging import MessagingMutations
from plugin.api.mutations.privacy import PrivacyMutations
from plugin.api.mutations.segments import SegmentMutations
from plugin.api.mutations.settings import SettingsMutations
from plugin.api.mutations.tokens import TokenMutations
from plugin.api.mutations.tracking import TrackingMutations
from plugin.api.queries.analytics import AnalyticsQueries
from plugin.api.queries.customers import CustomerQueries
from plugin.api.queries.importer import ImporterQueries
from plugin.api.queries.messaging import MessagingQueries
from plugin.api.queries.orders import OrderQueries
from plugin.api.queries.segments import SegmentQueries
from plugin.api.queries.settings import SettingsQueries
from plugin.api.queries.tokens import TokenQueries, ViewerQueries
from plugin.api.queries.tracking import TrackingQueries

logger = logging.getLogger(__name__)

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5000
PARSED_DOCUMENTS = 256


@strawberry.type(description="Customers, segments, analytics and configuration of one shop.")
class Query(
    CustomerQueries,
    ImporterQueries,
    MessagingQueries,
    OrderQueries,
    SegmentQueries,
    SettingsQueries,
    AnalyticsQueries,
    TokenQueries,
    ViewerQueries,
    TrackingQueries,
):
    pass


@strawberry.type
class Mutation(
    CustomerMutations,
    ImporterMutations,
    MessagingMutations,
    PrivacyMutations,
    SegmentMutations,
    SettingsMutations,
    AnalyticsMutations,
    TokenMutations,
    TrackingMutations,
):
    pass


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (typed, or the client's document) are answers, not incidents;
        # unexpected ones are logged where they are masked (errors.format_error).
        return None


def build_schema() -> Schema:
    extensions: list[Any] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # Parsed documents by text (and the token limit): clients repeat a few queries.
        lambda: ParserCache(maxsize=PARSED_DOCUMENTS),
        # Last: it runs the validation the rules above added to, then prices the query.
        lambda: QueryCostLimiter(max_cost=MAX_COST),
    ]
    return Schema(query=Query, mutation=Mutation, extensions=extensions)


schema = build_schema()

__all__ = ["ApiError", "schema"]
