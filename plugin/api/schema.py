"""The one strawberry schema, with its limits (`plugin.api.limits`): document size, depth,
aliases and cost."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from plugin.api.errors import ApiError
from plugin.api.inputs import SCALAR_OVERRIDES
from plugin.api.limits import DocumentLimiter
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
    # Parses, validates and measures every document under its limits (a fresh instance
    # per request: it holds the request's checked document).
    extensions: list[Any] = [DocumentLimiter]
    return Schema(
        query=Query, mutation=Mutation, extensions=extensions, scalar_overrides=SCALAR_OVERRIDES
    )


schema = build_schema()

__all__ = ["ApiError", "schema"]
