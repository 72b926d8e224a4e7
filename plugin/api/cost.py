"""Depth, aliases and static cost of a document's operations, measured before execution
in time linear in the document.

Cost: each field costs 1, and what is selected under a field with a `first` argument
counts `first` times (a page of 100 orders of 100 customers is 10,000 rows, whatever the
depth limit says). The page size is the explicit `first` (a literal or variable), else
the argument's default, capped at the page maximum; fields without `first` count once.

Depth: the deepest field below an operation's root fields (a root leaf is depth 0);
introspection fields (`__schema`, `__type`) do not count theirs, graphql-core's own
introspection depth rule bounds them. Aliases: aliased fields, each spread of a fragment
counting the fragment's aliases again.

A fragment spread n times inside fragments spread twice each multiplies all three, so
every fragment is measured once (leaves first, in dependency order) and its measure is
reused at each spread; a cycle is refused, and the walk stops at the first limit passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    Undefined,
    VariableNode,
    get_named_type,
)

from plugin.api.errors import InvalidInput
from plugin.api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_COST = 50_000
MAX_DEPTH = 12
MAX_ALIASES = 30

Composite = GraphQLObjectType | GraphQLInterfaceType
_META_FIELDS: dict[str, GraphQLField] = {
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
    "__typename": TypeNameMetaFieldDef,
}


class QueryTooCostly(InvalidInput):
    """INVALID_INPUT with `cost` and `maxCost`: ask for smaller pages or fewer fields."""


class QueryTooComplex(InvalidInput):
    """INVALID_INPUT with `limit` (what was exceeded) and `maximum`."""


class FragmentCycle(InvalidInput):
    """INVALID_INPUT: a fragment spreads itself, directly or through others."""


@dataclass(frozen=True)
class Limits:
    max_cost: int = MAX_COST
    max_depth: int = MAX_DEPTH
    max_aliases: int = MAX_ALIASES


@dataclass(frozen=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0


class _Measurer:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables
        self.limits = limits
        self.measured: dict[str, Measure] = {}

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

    def _check(self, measure: Measure) -> Measure:
        limits = self.limits
        if measure.cost > limits.max_cost:
            raise QueryTooCostly(
                f"The query costs more than the maximum of {limits.max_cost}: "
                "ask for smaller pages (`first`) or fewer fields.",
                cost=measure.cost,
                maxCost=limits.max_cost,
            )
        if measure.depth > limits.max_depth:
            raise QueryTooComplex(
                f"The query exceeds the maximum depth of {limits.max_depth} nested fields.",
                limit="depth",
                maximum=limits.max_depth,
            )
        if measure.aliases > limits.max_aliases:
            raise QueryTooComplex(
                f"The query has more than {limits.max_aliases} aliases "
                "(counting each fragment spread).",
                limit="aliases",
                maximum=limits.max_aliases,
            )
        return measure

    def _field(self, node: FieldNode, parent: Any) -> Measure:
        if not isinstance(parent, Composite):
            return Measure()
        name = node.name.value
        aliases = 1 if node.alias is not None else 0
        definition = parent.fields.get(name) or _META_FIELDS.get(name)
        if definition is None:
            return Measure(0, aliases, 1)  # unknown: validation has refused it already
        if node.selection_set is None:
            return Measure(0, aliases, 1)
        below = self.selections(node.selection_set, get_named_type(definition.type))
        depth = 0 if name.startswith("__") else 1 + below.depth
        cost = 1 + self._first(node, definition) * below.cost
        return self._check(Measure(depth, aliases + below.aliases, cost))

    def selections(self, selections: SelectionSetNode, parent: Any) -> Measure:
        depth = aliases = cost = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                part = self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                kind = self.schema.get_type(condition.name.value) if condition else parent
                part = self.selections(selection.selection_set, kind)
            elif isinstance(selection, FragmentSpreadNode):
                # Measured before anything that spreads it (dependency order).
                part = self.measured.get(selection.name.value, Measure())
            else:  # pragma: no cover - graphql-core has no other selection
                continue
            depth = max(depth, part.depth)
            aliases += part.aliases
            cost += part.cost
            self._check(Measure(depth, aliases, cost))
        return Measure(depth, aliases, cost)

    def fragment(self, fragment: FragmentDefinitionNode) -> None:
        kind = self.schema.get_type(fragment.type_condition.name.value)
        self.measured[fragment.name.value] = self.selections(fragment.selection_set, kind)


def _spreads(selections: SelectionSetNode) -> list[str]:
    """Names of the fragments spread in a selection set, at any nesting."""
    names: list[str] = []
    stack = [selections]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.append(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
    return names


def dependency_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """The fragments, each after the fragments it spreads; a cycle is refused.

    Iterative depth-first search: a chain of fragments cannot exhaust the stack."""
    uses = {name: _spreads(f.selection_set) for name, f in fragments.items()}
    order: list[str] = []
    state: dict[str, int] = {}  # 1: in progress, 2: done
    for root in fragments:
        if state.get(root):
            continue
        state[root] = 1
        path = [root]
        stack = [iter(uses[root])]
        while stack:
            name = next(stack[-1], None)
            if name is None:
                stack.pop()
                done = path.pop()
                state[done] = 2
                order.append(done)
                continue
            if name not in uses:
                continue  # unknown: validation reports it
            seen = state.get(name)
            if seen == 1:
                cycle = " → ".join([*path[path.index(name) :], name])
                raise FragmentCycle(f"Fragments must not spread themselves: {cycle}.")
            if seen is None:
                state[name] = 1
                path.append(name)
                stack.append(iter(uses[name]))
    return order


def measure_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    limits: Limits = Limits(),
) -> list[Measure]:
    """Every operation's measure, raising at the first limit passed (by a fragment too)."""
    definitions: Sequence[Any] = document.definitions
    fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    measurer = _measured_fragments(schema, fragments, variables, limits)
    return [
        measurer.selections(d.selection_set, _root(schema, d))
        for d in definitions
        if isinstance(d, OperationDefinitionNode)
    ]


def _measured_fragments(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> _Measurer:
    """A measurer with every fragment measured once, leaves first."""
    measurer = _Measurer(schema, fragments, variables or {}, limits)
    for name in dependency_order(fragments):
        measurer.fragment(fragments[name])
    return measurer


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Any:
    return {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }.get(operation.operation)


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
) -> int:
    """The cost of one operation, without limits (for tests and benches)."""
    unlimited = Limits(max_cost=2**63, max_depth=2**63, max_aliases=2**63)
    measurer = _measured_fragments(schema, fragments, variables, unlimited)
    return measurer.selections(operation.selection_set, _root(schema, operation)).cost
