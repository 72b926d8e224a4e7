"""Hostile GraphQL documents (issue 16): shared by the security tests and bench/abuse.py."""

from __future__ import annotations


def fragment_chain(n: int, leaf: str = "viewer { email }", on: str = "Query") -> str:
    """n fragments, each spreading the next twice: 2^n copies of `leaf` once expanded."""
    fragments = [f"fragment F{i} on {on} {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n)]
    fragments.append(f"fragment F{n} on {on} {{ {leaf} }}")
    return "query Bomb { ...F0 } " + " ".join(fragments)


def deep_chain(n: int) -> str:
    """Each fragment nests four levels deeper and spreads the next twice."""
    level = "segments {{ segment {{ members(first: 1) {{ nodes {{ {inner} }} }} }} }}"
    fragments = [
        f"fragment D{i} on Customer {{ " + level.format(inner=f"...D{i + 1} ...D{i + 1}") + " }"
        for i in range(n)
    ]
    fragments.append(f"fragment D{n} on Customer {{ email }}")
    return "{ customers { nodes { ...D0 } } } " + " ".join(fragments)
