"""The environment's promises: what is missing is said plainly, the build is keyed by the
tarball, and database copies of dead runs do not pile up."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.real_saleor.conftest import unavailable
from tests.real_saleor.environment import (
    RUN_DATABASE_PREFIX,
    Environment,
    SaleorUnavailable,
    _admin,
    create_run_database,
    drop_run_database,
    find_python312,
)


def test_a_missing_python_312_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SALEOR_PYTHON", raising=False)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no pyenv, no python3.12
    with pytest.raises(SaleorUnavailable, match=r"pyenv install 3\.12"):
        find_python312()


def test_a_wrong_saleor_python_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SALEOR_PYTHON", str(tmp_path / "python3.12"))
    with pytest.raises(SaleorUnavailable, match="not an executable"):
        find_python312()


def test_ci_fails_where_a_developer_may_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = SaleorUnavailable("no CPython 3.12")
    monkeypatch.setenv("CRM_SKIP_REAL_SALEOR", "1")
    monkeypatch.setenv("CI", "true")
    assert unavailable(problem) == "fail"
    monkeypatch.delenv("CI")
    assert unavailable(problem) == "skip"
    monkeypatch.delenv("CRM_SKIP_REAL_SALEOR")
    assert unavailable(problem) == "fail"


def test_a_new_tarball_is_a_new_environment(tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    one, two = Environment.for_tarball(first), Environment.for_tarball(second)
    assert one.home != two.home
    assert one.template_database != two.template_database


def test_copies_left_by_dead_runs_are_dropped(saleor_environment: Environment) -> None:
    dead = f"{RUN_DATABASE_PREFIX}{2**22 + 12345}_0badc0de"  # above Linux's default pid_max
    asyncio.run(_admin(f'CREATE DATABASE "{dead}"'))
    mine = create_run_database(saleor_environment)
    try:
        (rows,) = asyncio.run(
            _admin(f"SELECT datname FROM pg_database WHERE datname IN ('{dead}', '{mine}')")
        )
        assert [row["datname"] for row in rows] == [mine]  # type: ignore[attr-defined]
        assert mine.startswith(f"{RUN_DATABASE_PREFIX}{os.getpid()}_")
    finally:
        drop_run_database(mine)
        drop_run_database(dead)
