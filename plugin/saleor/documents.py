"""The GraphQL documents the app sends to Saleor, with the fragments they use.

Webhook subscriptions (`graphql/subscriptions/`) and the app's own queries
(`graphql/queries/`) spread shared fragments (`...OrderFields`), each kept once in
`graphql/fragments/<Name>.graphql`: the import asks for exactly what the webhooks carry.
A document is sent whole, its fragments appended, as Saleor expects.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

GRAPHQL_DIR = Path(__file__).resolve().parents[2] / "graphql"
FRAGMENTS_DIR = GRAPHQL_DIR / "fragments"

# `...Name`, not the inline `... on Type`
_SPREAD = re.compile(r"\.\.\.\s*(?!on\b)([A-Za-z_]\w*)")
_DEFINED = re.compile(r"\bfragment\s+([A-Za-z_]\w*)\s+on\b")


@cache
def document(path: Path) -> str:
    """The document at `path` with every fragment it spreads, directly or through another
    fragment, defined after it once."""
    text = path.read_text()
    defined = set(_DEFINED.findall(text))
    parts = [text.rstrip()]
    wanted = [name for name in _SPREAD.findall(text) if name not in defined]
    while wanted:
        name = wanted.pop(0)
        if name in defined:
            continue
        fragment_path = FRAGMENTS_DIR / f"{name}.graphql"
        if not fragment_path.is_file():
            raise LookupError(f"{path.name} spreads ...{name}: no {fragment_path}")
        fragment = fragment_path.read_text().rstrip()
        defined.add(name)
        parts.append(fragment)
        wanted += [n for n in _SPREAD.findall(fragment) if n not in defined]
    return "\n\n".join(parts) + "\n"
