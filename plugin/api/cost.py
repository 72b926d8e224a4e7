"""A static query cost, checked before execution: each field costs 1, and what is
selected under a field with a `first` argument counts `first` times (a page of 100
orders of 100 customers is 10,000 rows, whatever the depth limit says).

The page size is the explicit `first` (a literal or variable), else the argument's
default, capped at the page maximum; fields without `first` count once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    specified_rules,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from plugin.api.errors import InvalidInput
from plugin.api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_COST = 50_000

Composite = GraphQLObjectType | GraphQLInterfaceType


class QueryTooCostly(InvalidInput):
    """INVALID_INPUT with `cost` and `maxCost`: ask for smaller pages or fewer fields."""


class _Cost:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables

    def _first(self, node: FieldNode, definition: GraphQLField) -> int:
        argument = definition.args.get("first")
        if argument is None:
            return 1
        value: Any = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            if isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                value = self.variables.get(given.value.name.value, value)
        if value is None or value is Undefined:
            return DEFAULT_PAGE_SIZE  # what page_size() gives when `first` is left out
        if not isinstance(value, int) or isinstance(value, bool):
            return MAX_PAGE_SIZE  # invalid: execution rejects it; price the worst page
        return max(0, min(value, MAX_PAGE_SIZE))

    def _fields(self, selections: SelectionSetNode, parent: Any) -> Iterator[tuple[FieldNode, Any]]:
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                kind = self.schema.get_type(condition.name.value) if condition else parent
                yield from self._fields(selection.selection_set, kind)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    kind = self.schema.get_type(fragment.type_condition.name.value)
                    yield from self._fields(fragment.selection_set, kind)

    def of(self, selections: SelectionSetNode | None, parent: Any) -> int:
        if selections is None or not isinstance(parent, Composite):
            return 0
        total = 0
        for node, kind in self._fields(selections, parent):
            if not isinstance(kind, Composite):
                continue
            definition = kind.fields.get(node.name.value)
            if definition is None:  # __typename and other meta fields
                total += 1
                continue
            below = self.of(node.selection_set, get_named_type(definition.type))
            total += 1 + self._first(node, definition) * below
        return total


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
) -> int:
    roots = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }
    counter = _Cost(schema, fragments, variables or {})
    return counter.of(operation.selection_set, roots.get(operation.operation))


# Validating the customer card's document costs more CPU than running it: the result of
# validating a document depends on its text only (the schema and rules are fixed), so
# the last documents' results are kept; the cost (variables) is still priced every time.
VALIDATED_DOCUMENTS = 256
_validated: dict[str, tuple[GraphQLError, ...]] = {}


def _validate(schema: GraphQLSchema, document: Any, rules: Any) -> tuple[GraphQLError, ...]:
    # The spec's rules first: the added ones (depth, aliases) assume a valid document
    # and crash on, say, an unknown fragment.
    standard = tuple(r for r in rules if r in specified_rules)
    added = tuple(r for r in rules if r not in specified_rules)
    errors = list(validate_document(schema, document, standard))
    if not errors and added:
        errors = list(validate_document(schema, document, added))
    return tuple(errors)


class QueryCostLimiter(SchemaExtension):
    """Validates the document itself (the cost is only computed for valid documents),
    then answers a typed error when the chosen operation costs more than `max_cost`."""

    def __init__(self, max_cost: int = MAX_COST) -> None:
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            schema = context.schema._schema
            rules = context.validation_rules
            # The rules are the same for every request (the limiters add fresh but equal
            # classes each time), so the text is the key.
            key = context.query or ""
            found = _validated.get(key)
            if found is None:
                found = _validate(schema, document, rules)
                if len(_validated) >= VALIDATED_DOCUMENTS:
                    _validated.pop(next(iter(_validated)))
                _validated[key] = found
            errors = list(found)
            if not errors:
                errors = self._check(
                    schema, context.operation_name, document.definitions, context.variables
                )
            context.pre_execution_errors = errors
        yield

    def _check(
        self,
        schema: GraphQLSchema,
        name: str | None,
        definitions: Any,
        variables: dict[str, Any] | None,
    ) -> list[GraphQLError]:
        operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
        fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
        chosen = [o for o in operations if name is None or (o.name and o.name.value == name)]
        if len(chosen) != 1:
            return []  # execution reports the missing or ambiguous operation
        cost = operation_cost(schema, chosen[0], fragments, variables)
        if cost <= self.max_cost:
            return []
        error = QueryTooCostly(
            f"The query costs {cost}, above the maximum of {self.max_cost}: "
            "ask for smaller pages (`first`) or fewer fields.",
            cost=cost,
            maxCost=self.max_cost,
        )
        return [GraphQLError(error.message, original_error=error)]
