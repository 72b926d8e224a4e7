"""Input the database can store, refused as INVALID_INPUT at the edge otherwise.

PostgreSQL refuses a NUL character in text and JSONB, and no database driver encodes an
unpaired surrogate (JSON's `"\\ud800"`): either would fail mid-statement as an internal
error. The API refuses both in every string it is given, in variables (`String`, `ID`,
`JSON` alike) and in the document's literals. Decimals are finite and fit a money column
(`Numeric(18, 4)`): `"1e400"`, `NaN` and `Infinity` are refused by the scalar itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from decimal import Decimal, DecimalException
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    ValueNode,
)
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DecimalDefinition
from strawberry.types.scalar import ScalarDefinition

from plugin.api.errors import InvalidInput

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A money column holds 14 digits before the point; more places than this are noise.
MAX_DECIMAL_DIGITS = 14
MAX_DECIMAL_PLACES = 12

UNSTORABLE_MESSAGE = (
    "Text must not contain NUL characters (\\u0000) or unpaired surrogates (\\ud800-\\udfff)."
)


def unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def check_variables(variables: Any) -> None:
    """Walks the variables (iteratively: their nesting is the client's) for bad text."""
    stack: list[tuple[str, Any]] = [("", variables)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if unstorable(value):
                raise InvalidInput(UNSTORABLE_MESSAGE, field=path.lstrip("."))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and unstorable(key):
                    raise InvalidInput(UNSTORABLE_MESSAGE, field=path.lstrip("."))
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def _arguments(document: DocumentNode) -> Iterator[ValueNode]:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for variable in definition.variable_definitions or ():
                if variable.default_value is not None:
                    yield variable.default_value
        if not isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            continue
        nodes: list[Any] = [definition]
        while nodes:
            node = nodes.pop()
            arguments: tuple[ArgumentNode, ...] = getattr(node, "arguments", None) or ()
            directives: tuple[DirectiveNode, ...] = getattr(node, "directives", None) or ()
            for argument in (*arguments, *(a for d in directives for a in d.arguments or ())):
                yield argument.value
            if isinstance(node, FragmentSpreadNode):
                continue
            if isinstance(node, OperationDefinitionNode | FragmentDefinitionNode | FieldNode):
                if node.selection_set is not None:
                    nodes.extend(node.selection_set.selections)
            elif isinstance(node, InlineFragmentNode):
                nodes.extend(node.selection_set.selections)


def check_literals(document: DocumentNode) -> None:
    """The document's string literals (`"\\u0000"` is a NUL once parsed)."""
    for root in _arguments(document):
        values: list[ValueNode] = [root]
        while values:
            value = values.pop()
            if isinstance(value, StringValueNode):
                if unstorable(value.value):
                    raise InvalidInput(UNSTORABLE_MESSAGE)
            elif isinstance(value, ListValueNode):
                values.extend(value.values)
            elif isinstance(value, ObjectValueNode):
                values.extend(f.value for f in value.fields)


def parse_decimal(value: object) -> Decimal:
    """A finite number that fits a money column, from a string or a JSON number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise StrawberryInputCoercionError(f"Decimal expects a number, got {value!r}.")
    shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "…"
    try:
        number = Decimal(str(value).strip())
    except DecimalException:
        raise StrawberryInputCoercionError(f'"{shown}" is not a decimal number.') from None
    if not number.is_finite():
        raise StrawberryInputCoercionError(f'"{shown}" is not a finite number.')
    if number and number.adjusted() >= MAX_DECIMAL_DIGITS:
        raise StrawberryInputCoercionError(
            f'"{shown}" is out of range: at most {MAX_DECIMAL_DIGITS} digits before the point.'
        )
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise StrawberryInputCoercionError(
            f'"{shown}" has more than {MAX_DECIMAL_PLACES} decimal places.'
        )
    return number


BOUNDED_DECIMAL: ScalarDefinition = dataclasses.replace(
    DecimalDefinition, parse_value=parse_decimal
)
SCALAR_OVERRIDES: dict[object, Any] = {Decimal: BOUNDED_DECIMAL}
