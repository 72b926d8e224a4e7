"""The webhooks the app subscribes to, read from the documents in `graphql/subscriptions/`.

The documents are the single source of truth: the manifest's `asyncEvents`, the accepted
`Saleor-Event` headers and the fold dispatch all derive from their `... on X` fragments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from graphql import FieldNode, InlineFragmentNode, OperationDefinitionNode, parse

from plugin.saleor.documents import GRAPHQL_DIR, document
from plugin.saleor.payloads import typename_to_event

SUBSCRIPTIONS_DIR = GRAPHQL_DIR / "subscriptions"


@dataclass(frozen=True)
class WebhookSpec:
    family: str  # "order"; also the URL path /api/webhooks/<family>
    query: str
    typenames: tuple[str, ...]  # "OrderCreated", ...

    @property
    def events(self) -> tuple[str, ...]:
        """Lower snake case, as in the `Saleor-Event` header."""
        return tuple(typename_to_event(t) for t in self.typenames)

    @property
    def async_events(self) -> list[str]:
        """`WebhookEventTypeAsyncEnum` names for the manifest."""
        return [e.upper() for e in self.events]


def _typenames(query: str) -> tuple[str, ...]:
    document = parse(query)
    for definition in document.definitions:
        if (
            isinstance(definition, OperationDefinitionNode)
            and definition.operation.value == "subscription"
        ):
            (root,) = definition.selection_set.selections
            assert isinstance(root, FieldNode)
            assert root.selection_set is not None
            return tuple(
                s.type_condition.name.value
                for s in root.selection_set.selections
                if isinstance(s, InlineFragmentNode) and s.type_condition is not None
            )
    raise ValueError("no subscription operation in document")


@cache
def webhook_specs() -> tuple[WebhookSpec, ...]:
    specs = []
    for path in sorted(SUBSCRIPTIONS_DIR.glob("*_events.graphql")):
        query = document(path)
        specs.append(WebhookSpec(path.stem.removesuffix("_events"), query, _typenames(query)))
    return tuple(specs)


@cache
def family_of(event_type: str) -> str | None:
    for spec in webhook_specs():
        if event_type in spec.events:
            return spec.family
    return None


def spec_for(family: str) -> WebhookSpec | None:
    return next((s for s in webhook_specs() if s.family == family), None)
