"""Bounds on a GraphQL document, each checked before the work it guards.

Anyone may post a document (introspection needs no token), so nothing about one may cost
more than its size: the text is bounded before it is parsed (characters, then tokens
while parsing), the parsed document before it is validated (definitions, fragment
spreads, aliases, directives, nesting; one flat pass), then depth, aliases and cost are
measured with each fragment measured once (`plugin.api.cost`), and only then does
graphql-core validate it, its field-merging rule on a small work budget. Parsing and
validation run in a worker thread, so a document being checked never holds up other
requests; documents seen before (the dashboard's) come from a bounded cache without any
of that work.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql.validation import (
    ASTValidationRule,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from plugin.api.cost import Limits, measure_document
from plugin.api.errors import ApiError, InvalidInput
from plugin.api.inputs import check_literals, check_variables

T = TypeVar("T")


@dataclass(frozen=True)
class DocumentLimits:
    """The largest document accepted (the dashboard's biggest, GraphiQL's introspection
    query: 1.7 KB, 183 tokens, no field-merge work)."""

    max_characters: int = 10_000
    max_tokens: int = 1_000
    max_definitions: int = 50  # operations and fragments
    max_fragment_spreads: int = 100
    max_aliases: int = 30  # as written; `Limits.max_aliases` counts each spread again
    max_directives: int = 30
    max_nesting: int = 30  # selection sets, inline fragments included
    # graphql-core's "overlapping fields can be merged" rule compares fields sharing a
    # response name pairwise (500,000 units, about 6 s, by default).
    max_merge_work: int = 1_000


DEFAULT_LIMITS = DocumentLimits()
DEFAULT_MEASURES = Limits()


class DocumentTooLarge(InvalidInput):
    """INVALID_INPUT with `limit` (what was exceeded) and `maximum`."""


def _too_large(limit: str, maximum: int, what: str) -> DocumentTooLarge:
    return DocumentTooLarge(
        f"The document has more than {maximum} {what}.", limit=limit, maximum=maximum
    )


def check_text(query: str, limits: DocumentLimits) -> None:
    if len(query) > limits.max_characters:
        raise _too_large("characters", limits.max_characters, "characters")


def census(document: DocumentNode, limits: DocumentLimits) -> None:
    """Counts what the document holds as written (no fragment is expanded), iteratively,
    refusing it at the first count over its limit."""
    definitions = document.definitions
    if len(definitions) > limits.max_definitions:
        raise _too_large("definitions", limits.max_definitions, "operations and fragments")
    spreads = aliases = directives = 0
    for definition in definitions:
        if not isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            continue  # type definitions: validation refuses them
        directives += len(definition.directives or ())
        for variable in getattr(definition, "variable_definitions", None) or ():
            directives += len(variable.directives or ())
        stack: list[tuple[SelectionSetNode, int]] = [(definition.selection_set, 1)]
        while stack:
            selection_set, level = stack.pop()
            if level > limits.max_nesting:
                raise _too_large("nesting", limits.max_nesting, "levels of nested selections")
            for selection in selection_set.selections:
                directives += len(selection.directives or ())
                if isinstance(selection, FieldNode):
                    aliases += selection.alias is not None
                    if selection.selection_set is not None:
                        stack.append((selection.selection_set, level + 1))
                elif isinstance(selection, InlineFragmentNode):
                    stack.append((selection.selection_set, level + 1))
                elif isinstance(selection, FragmentSpreadNode):
                    spreads += 1
            if spreads > limits.max_fragment_spreads:
                raise _too_large("fragmentSpreads", limits.max_fragment_spreads, "fragment spreads")
            if aliases > limits.max_aliases:
                raise _too_large("aliases", limits.max_aliases, "aliases")
            if directives > limits.max_directives:
                raise _too_large("directives", limits.max_directives, "directives")


def _budgeted_merge_rule(budget: int) -> type[ASTValidationRule]:
    class BudgetedOverlappingFields(OverlappingFieldsCanBeMergedRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.rule_context.remaining_complexity_budget = budget

    return BudgetedOverlappingFields


def validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    limits: DocumentLimits,
) -> list[GraphQLError]:
    """The spec's rules (with the merge rule on a budget), as graphql-core reports them."""
    merge = _budgeted_merge_rule(limits.max_merge_work)
    budgeted = tuple(merge if r is OverlappingFieldsCanBeMergedRule else r for r in rules)
    errors = validate_document(schema, document, budgeted)
    return [_clear(error, limits) for error in errors]


def _clear(error: GraphQLError, limits: DocumentLimits) -> GraphQLError:
    if not isinstance(error, ValidationAbortedError) or "Too many" in error.message:
        return error
    # The merge rule ran out of budget: fields sharing a response name, many times over.
    reason = DocumentTooLarge(
        "The document is too complex to validate: too many fields share a response name "
        "(the same field or alias repeated, directly or through fragments).",
        limit="mergeWork",
        maximum=limits.max_merge_work,
    )
    return GraphQLError(reason.message, original_error=reason)


@dataclass(frozen=True)
class Checked:
    """A parsed document and what its validation found; `reusable` when that depends on
    the text alone (not on the variables a measure was given)."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    reusable: bool = True


def _error(error: ApiError) -> GraphQLError:
    return GraphQLError(error.message, original_error=error)


def check_document(
    schema: GraphQLSchema,
    query: str,
    rules: tuple[type[ASTValidationRule], ...],
    limits: DocumentLimits,
    measure: Callable[[DocumentNode], None] | None = None,
) -> Checked:
    """Parse (bounded), census, measure, validate: CPU work, meant for a worker thread.

    The measure (linear) comes before validation: a fragment bomb is refused in a
    fraction of the time the spec's rules take over its fragments."""
    try:
        document = parse(query, max_tokens=limits.max_tokens)
    except GraphQLError as error:  # syntax, too many tokens, nested too deeply
        return Checked(None, (error,), reusable=False)
    try:
        census(document, limits)
        check_literals(document)
    except ApiError as error:
        return Checked(document, (_error(error),))
    if measure is not None:
        try:
            measure(document)
        except ApiError as error:
            return Checked(document, (_error(error),), reusable=False)
    return Checked(document, tuple(validate(schema, document, rules, limits)))


class CheckedCache:
    """The last documents checked, by text, bounded by count and total characters (a
    document's syntax tree takes about 100 bytes per character of its text)."""

    def __init__(self, max_entries: int = 256, max_characters: int = 100_000) -> None:
        self.max_entries, self.max_characters = max_entries, max_characters
        self._entries: OrderedDict[str, Checked] = OrderedDict()
        self._characters = 0
        self._lock = threading.Lock()

    def get(self, query: str) -> Checked | None:
        with self._lock:
            found = self._entries.get(query)
            if found is not None:
                self._entries.move_to_end(query)
            return found

    def put(self, query: str, checked: Checked) -> None:
        if len(query) > self.max_characters // 8:
            return  # a few large documents would evict the dashboard's
        with self._lock:
            if query in self._entries:
                return
            self._entries[query] = checked
            self._characters += len(query)
            while len(self._entries) > self.max_entries or self._characters > self.max_characters:
                evicted, _ = self._entries.popitem(last=False)
                self._characters -= len(evicted)


# One thread: documents being checked share the interpreter with the event loop one at a
# time, whatever number arrive at once (the others queue). Within the limits a check
# takes 1-5 ms of CPU, 20 ms when the field-merge budget runs out.
_CHECKERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphql-check")
_checked = CheckedCache()


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_CHECKERS, work)


class DocumentLimiter(SchemaExtension):
    """Parses and validates under the limits, off the event loop, then measures depth,
    aliases and cost (they depend on the variables) before anything is executed."""

    def __init__(
        self, limits: DocumentLimits = DEFAULT_LIMITS, measures: Limits = DEFAULT_MEASURES
    ) -> None:
        self.limits, self.measures = limits, measures
        self.checked: Checked | None = None
        self.measured = False

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query is not None:
            query: str = context.query
            check_text(query, self.limits)  # raised here: a typed error, nothing parsed
            checked = _checked.get(query)
            if checked is None:
                schema, rules = context.schema._schema, tuple(context.validation_rules)
                variables = context.variables
                checked = await _in_thread(
                    lambda: check_document(
                        schema, query, rules, self.limits, lambda d: self._measure(d, variables)
                    )
                )
                self.measured = True
                if checked.document is None:
                    raise checked.errors[0]  # syntax: not cached, the error is raised once
                if checked.reusable:
                    _checked.put(query, checked)
            self.checked = checked
            context.graphql_document = checked.document
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        checked = self.checked
        if checked is not None and checked.document is not None:
            if context.pre_execution_errors is None:
                errors = list(checked.errors)
                if not errors and not self.measured:  # a cached document: linear, bounded
                    try:
                        self._measure(checked.document, context.variables)
                    except ApiError as error:
                        errors = [_error(error)]
                # Not None: strawberry skips its own validation, done above.
                context.pre_execution_errors = errors
        yield

    def _measure(self, document: DocumentNode, variables: Mapping[str, Any] | None) -> None:
        check_variables(variables)
        schema = self.execution_context.schema._schema
        measure_document(schema, document, variables, self.measures)
