"""Reading around an object Saleor cannot give: smaller pages, the object alone, then the
object without the field that fails.

Saleor answers a page with GraphQL errors when one object on it cannot be serialised (its
demo data has orders whose `origin` is empty: `Expected a value of type
"OrderOriginEnum" but received: `). A non-null field failing nulls every non-null parent
up to the list itself, so `data` says `{"orders": null}` and the page is lost; the error's
`path` (`["orders", "edges", 3, "node", "origin"]`) names the first object that failed
and the field. `read_page` then reads the objects before it as a smaller page (halving
the page when the error names no object), the failing object alone, and, if it fails
alone, the same document without the failing field (built from the document by removing
the field, fragments inlined so only that one place goes), until it reads or only its id
is left. Every object that can be read is folded; each one read without a field, or not
at all, is reported with Saleor's message. Cursors always come from Saleor's own answer
of the narrowed page, so the next page starts right after the last object handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    NameNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    parse,
    print_ast,
)

from plugin.saleor.client import SaleorError

MAX_FIELDS_LEFT_OUT = 8  # fields dropped from one object before only its id is read


class PageErrors(SaleorError):
    """Saleor answered a page with GraphQL errors and no list: `errors` as it sent them."""

    def __init__(self, resource: str, errors: Sequence[Any]) -> None:
        self.errors = [e for e in errors if isinstance(e, dict)]
        messages = "; ".join(str(e.get("message")) for e in self.errors) or "no data"
        super().__init__("SALEOR_ERROR", f"Saleor returned no {resource}: {messages}")


@dataclass(frozen=True)
class NodeError:
    """An error Saleor reported inside a listed object: which one, and which field."""

    index: int
    field: tuple[str, ...]  # response keys below the node, list indices left out
    message: str


def node_error(error: dict[str, Any], connection_field: str) -> NodeError | None:
    """The object and field an error's `path` points at (`[field, "edges", i, "node", …]`),
    or None when it points elsewhere."""
    path = error.get("path")
    if not isinstance(path, list) or len(path) < 4:
        return None
    if path[0] != connection_field or path[1] != "edges" or path[3] != "node":
        return None
    if not isinstance(path[2], int) or isinstance(path[2], bool):
        return None
    keys = tuple(str(p) for p in path[4:] if not isinstance(p, int))
    return NodeError(path[2], keys, str(error.get("message") or "unknown error"))


def first_node_error(errors: Sequence[dict[str, Any]], field: str) -> NodeError | None:
    found = [e for e in (node_error(error, field) for error in errors) if e is not None]
    return min(found, key=lambda e: e.index) if found else None


def describe(resource: str, error: NodeError) -> str:
    """How a failure reads on the import page."""
    what = ".".join(error.field) if error.field else resource.rstrip("s")
    return f"Saleor could not give {what}: {error.message}"


# -- variant documents ----------------------------------------------------------------------
def _inline(selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]) -> Any:
    """The selection set with every fragment spread replaced by its inline copy, so that
    a field reached through a shared fragment (`AddressFields` under billing and shipping)
    can be left out in one place only."""
    out: list[SelectionNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            out.append(
                InlineFragmentNode(
                    type_condition=fragment.type_condition,
                    directives=selection.directives,
                    selection_set=_inline(fragment.selection_set, fragments),
                )
            )
        elif isinstance(selection, InlineFragmentNode):
            out.append(
                InlineFragmentNode(
                    type_condition=selection.type_condition,
                    directives=selection.directives,
                    selection_set=_inline(selection.selection_set, fragments),
                )
            )
        elif isinstance(selection, FieldNode):
            out.append(
                FieldNode(
                    alias=selection.alias,
                    name=selection.name,
                    arguments=selection.arguments,
                    directives=selection.directives,
                    selection_set=_inline(selection.selection_set, fragments)
                    if selection.selection_set
                    else None,
                )
            )
    return SelectionSetNode(selections=tuple(out))


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _edit(
    selection_set: SelectionSetNode, keys: Sequence[str], replacement: SelectionSetNode | None
) -> SelectionSetNode | None:
    """The set with the field at `keys` removed (`replacement` None) or its selection
    replaced; None when nothing is left in it."""
    out: list[SelectionNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, InlineFragmentNode):
            inner = _edit(selection.selection_set, keys, replacement)
            if inner is not None:
                out.append(
                    InlineFragmentNode(
                        type_condition=selection.type_condition,
                        directives=selection.directives,
                        selection_set=inner,
                    )
                )
            continue
        if not isinstance(selection, FieldNode) or _key(selection) != keys[0]:
            out.append(selection)
            continue
        if len(keys) == 1:
            if replacement is not None:
                out.append(_with_selection(selection, replacement))
            continue
        if selection.selection_set is None:
            out.append(selection)
            continue
        below = _edit(selection.selection_set, keys[1:], replacement)
        if below is not None:
            out.append(_with_selection(selection, below))
    return SelectionSetNode(selections=tuple(out)) if out else None


def _with_selection(field: FieldNode, selection_set: SelectionSetNode) -> FieldNode:
    return FieldNode(
        alias=field.alias,
        name=field.name,
        arguments=field.arguments,
        directives=field.directives,
        selection_set=selection_set,
    )


@cache
def _inlined(document: str) -> OperationDefinitionNode:
    parsed = parse(document)
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    return OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=_inline(operation.selection_set, fragments),
    )


def _print(operation: OperationDefinitionNode, selection_set: SelectionSetNode | None) -> str:
    if selection_set is None:
        raise ValueError("nothing left to ask for")
    edited = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=selection_set,
    )
    return print_ast(DocumentNode(definitions=(edited,)))


@cache
def without_fields(document: str, connection_field: str, fields: frozenset[tuple[str, ...]]) -> str:
    """`document` (a list query) asking its nodes for everything but `fields` (response
    keys below `node`)."""
    operation = _inlined(document)
    selection: SelectionSetNode | None = operation.selection_set
    for field in sorted(fields):
        if selection is None:
            break
        selection = _edit(selection, (connection_field, "edges", "node", *field), None)
    return _print(operation, selection)


@cache
def ids_only(document: str, connection_field: str) -> str:
    """`document` asking its nodes for their id alone (same list, order and cursors)."""
    operation = _inlined(document)
    just_id = SelectionSetNode(selections=(FieldNode(name=NameNode(value="id")),))
    selection = _edit(operation.selection_set, (connection_field, "edges", "node"), just_id)
    return _print(operation, selection)
