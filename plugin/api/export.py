"""Write the schema's SDL to `graphql/schema.graphql` (`python -m plugin.api.export`);
`--check` exits 1 when the file is out of date."""

from __future__ import annotations

import sys
from pathlib import Path

from plugin.api.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "graphql" / "schema.graphql"


def sdl() -> str:
    return schema.as_str() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        current = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
        if current != sdl():
            sys.stderr.write(f"{SCHEMA_FILE} is out of date: run python -m plugin.api.export\n")
            return 1
        return 0
    SCHEMA_FILE.write_text(sdl())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
