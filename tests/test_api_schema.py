"""The exported SDL (`graphql/schema.graphql`) is the schema the code builds."""

from __future__ import annotations

from plugin.api.export import SCHEMA_FILE, main, sdl


def test_exported_sdl_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == sdl(), "run `python -m plugin.api.export`"
    assert main(["--check"]) == 0


def test_schema_names_are_the_public_ones() -> None:
    text = sdl()
    for name in (
        "customer(",
        "customers(",
        "segments:",
        "segment(",
        "segmentPreview(",
        "customerAddNote(",
        "customerTag(",
        "customerUntag(",
        "customerSetConsent(",
        "customerMerge(",
        "customerExport(",
        "customerAnonymize(",
        "segmentCreate(",
        "segmentUpdate(",
        "segmentDelete(",
        "apiTokenCreate(",
        "apiTokenRevoke(",
    ):
        assert name in text
