"""The real Saleor core the end-to-end tests run: built once per machine, outside the repo.

`python -m tests.real_saleor.environment` (what `make test-saleor` runs first) makes sure of:

- the unpacked source of the Saleor tarball and its virtualenv (`uv sync --frozen` with
  CPython 3.12), under `~/.cache/saleor-crm/saleor-<version>-<sha256[:12]>/`: a new tarball
  is a new folder, so it is rebuilt and never mixed with the old one;
- a PostgreSQL TEMPLATE database holding Saleor migrated and filled by
  `populatedb --createsuperuser` (staff `admin@example.com` / `admin`). Migrating takes
  minutes; `CREATE DATABASE … TEMPLATE` copies it for each test run in seconds.

Every step leaves a marker when it finished, so a run after an interrupted one redoes only
what is missing; the whole build holds a file lock, so two runs starting at once build once.
What the machine lacks (CPython 3.12, PyPI, PostgreSQL) is a `SaleorUnavailable` that says
what to install. The project never imports Saleor's code: it only runs it as a server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SALEOR_VERSION = "3.23.28"
REPO_ROOT = Path(__file__).resolve().parents[2]
TARBALL_NAME = f"saleor-{SALEOR_VERSION}.tar.gz"
# uv is only the installer of Saleor's own lock file; pinned so a build is repeatable.
UV_REQUIREMENT = "uv==0.13.9"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STAFF_EMAIL = "admin@example.com"
STAFF_PASSWORD = "admin"
RUN_DATABASE_PREFIX = "saleor_run_"


class SaleorUnavailable(RuntimeError):
    """The machine cannot run the real Saleor; the message says what is missing."""


def tarball_path() -> Path:
    """`SALEOR_TARBALL`, else `shared/saleor/core/` in a folder above the checkout."""
    configured = os.environ.get("SALEOR_TARBALL")
    shared = [p / "shared" / "saleor" / "core" / TARBALL_NAME for p in REPO_ROOT.parents]
    found = [Path(configured)] if configured else [p for p in shared if p.is_file()][:1]
    path = found[0] if found else shared[0]
    if not path.is_file():
        raise SaleorUnavailable(
            f"the Saleor {SALEOR_VERSION} source tarball is not at {path}; set SALEOR_TARBALL "
            "to the `git archive` of saleor/saleor at that tag"
        )
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    configured = os.environ.get("SALEOR_CRM_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "saleor-crm"


def admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def database_url(name: str) -> str:
    """The URL of database `name` on the server of `TEST_POSTGRES_URL`."""
    return admin_url().rsplit("/", 1)[0] + "/" + name


@dataclass(frozen=True)
class Environment:
    """Where the built Saleor lives; enough to start servers on copies of its database."""

    tarball_sha256: str
    home: Path  # the per-tarball cache folder
    source: Path  # the unpacked tarball (manage.py, saleor/)
    venv: Path
    template_database: str

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def uvicorn(self) -> Path:
        return self.venv / "bin" / "uvicorn"

    @classmethod
    def for_tarball(cls, tarball: Path) -> Environment:
        sha = sha256_of(tarball)
        home = cache_root() / f"saleor-{SALEOR_VERSION}-{sha[:12]}"
        version = SALEOR_VERSION.replace(".", "_")
        return cls(
            tarball_sha256=sha,
            home=home,
            source=home / "src",
            venv=home / "venv",
            template_database=f"saleor_tpl_{version}_{sha[:12]}",
        )


def saleor_settings(
    database: str, *, port: int, rsa_private_key: str | None = None
) -> dict[str, str]:
    """Saleor's environment for a server on loopback `port` using `database`.

    DEBUG: Saleor then serves without a static-files set-up and accepts any host. Telemetry
    off (no internet), and loopback allowed as a webhook/app target: the app under test
    listens on 127.0.0.1. No Celery broker: tasks (webhooks too) run in the request."""
    settings = {
        "DATABASE_URL": database_url(database),
        "SECRET_KEY": "saleor-crm-real-saleor-tests",
        "DEBUG": "True",
        "ALLOWED_HOSTS": "*",
        "ALLOWED_CLIENT_HOSTS": "*",
        "PUBLIC_URL": f"http://127.0.0.1:{port}/",
        "SEND_USAGE_TELEMETRY": "False",
        "HTTP_IP_FILTER_ALLOW_LOOPBACK_IPS": "True",
        "CELERY_BROKER_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    if rsa_private_key is not None:
        settings["RSA_PRIVATE_KEY"] = rsa_private_key
    return settings


def _clean_environ() -> dict[str, str]:
    """The caller's environment minus what would leak into Saleor's settings or venv."""
    leaking = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in leaking}


def saleor_process_env(settings: dict[str, str], env: Environment) -> dict[str, str]:
    process_env = _clean_environ()
    process_env.update(settings)
    process_env["PATH"] = f"{env.venv / 'bin'}:{process_env.get('PATH', '')}"
    process_env["VIRTUAL_ENV"] = str(env.venv)
    return process_env


# -- building --------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[real-saleor] {message}", file=sys.stderr, flush=True)  # noqa: T201


@contextlib.contextmanager
def _build_lock(env: Environment) -> Iterator[None]:
    """One builder per tarball on this machine; the others wait, then find it built."""
    env.home.parent.mkdir(parents=True, exist_ok=True)
    lock_path = env.home.parent / f"{env.home.name}.lock"
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"another run holds the build lock of {env.home}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def find_python312() -> Path:
    """CPython 3.12 (Saleor 3.23 requires >=3.12,<3.13): `SALEOR_PYTHON`, pyenv's newest
    3.12.x, or `python3.12` on PATH."""
    configured = os.environ.get("SALEOR_PYTHON")
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise SaleorUnavailable(f"SALEOR_PYTHON={configured} is not an executable")
        return path
    candidates: list[Path] = []
    pyenv = shutil.which("pyenv")
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    if pyenv:
        found = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        roots.insert(0, found.stdout.strip())
    for root in filter(None, roots):
        versions = Path(root) / "versions"
        if versions.is_dir():
            for folder in versions.iterdir():
                if re.fullmatch(r"3\.12\.\d+", folder.name):
                    candidates.append(folder / "bin" / "python")
    candidates = [c for c in candidates if os.access(c, os.X_OK)]
    if candidates:
        return max(candidates, key=lambda p: tuple(int(n) for n in p.parts[-3].split(".")))
    on_path = shutil.which("python3.12")
    if on_path:
        return Path(on_path)
    raise SaleorUnavailable(
        "the real-Saleor tests need CPython 3.12 (Saleor 3.23 requires >=3.12,<3.13) and "
        "none was found: install it with `pyenv install 3.12`, or set SALEOR_PYTHON to a "
        "3.12 interpreter"
    )


def _run(command: list[str | Path], *, what: str, **kwargs: object) -> None:
    """Run a build step; on failure raise with the step's last output lines."""
    started = time.monotonic()
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        hint = ""
        if "pip" in what or "uv sync" in what:
            hint = " (is PyPI reachable from this machine?)"
        raise SaleorUnavailable(f"{what} failed with exit {result.returncode}{hint}:\n{tail}")
    _log(f"{what}: {time.monotonic() - started:.0f} s")


def _unpack(env: Environment, tarball: Path) -> None:
    marker = env.home / ".unpacked"
    if marker.exists():
        return
    staging = env.home / "src.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(env.source, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(staging, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            archive.extractall(staging)  # our own fixture tarball
    tops = list(staging.iterdir())
    top = tops[0] if len(tops) == 1 and tops[0].is_dir() else staging
    top.rename(env.source)
    shutil.rmtree(staging, ignore_errors=True)
    marker.touch()


def _sync_dependencies(env: Environment) -> None:
    marker = env.home / ".synced"
    if marker.exists() and env.python.exists():
        return
    python = find_python312()
    tools = env.home / "uv-tool"
    uv = tools / "bin" / "uv"
    if not uv.exists():
        shutil.rmtree(tools, ignore_errors=True)
        _run([python, "-m", "venv", tools], what="creating the uv tool venv")
        _run(
            [tools / "bin" / "python", "-m", "pip", "install", "-q", UV_REQUIREMENT],
            what="pip install uv",
        )
    sync_env = _clean_environ()
    sync_env.update(UV_PYTHON=str(python), UV_PROJECT_ENVIRONMENT=str(env.venv))
    # The dev group stays: a runtime module of Saleor imports pytest.
    _run(
        [uv, "sync", "--frozen", "--no-progress"],
        what="uv sync --frozen",
        cwd=env.source,
        env=sync_env,
    )
    marker.touch()


async def _admin(*statements: str) -> list[object]:
    import asyncpg

    try:
        conn = await asyncpg.connect(admin_url(), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise SaleorUnavailable(
            f"PostgreSQL at {admin_url()} is unreachable ({exc}); the real-Saleor tests keep "
            "Saleor's database there (set TEST_POSTGRES_URL)"
        ) from exc
    results: list[object] = []
    try:
        for statement in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                results.append(await conn.fetch(statement))
            else:
                results.append(await conn.execute(statement))
    finally:
        await conn.close()
    return results


def _database_exists(name: str) -> bool:
    (rows,) = asyncio.run(_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))
    return bool(rows)


def _build_template(env: Environment) -> None:
    """Migrate and populate a scratch database, then rename it into the template: the
    template's name exists only once it is complete."""
    if _database_exists(env.template_database):
        return
    scratch = f"{env.template_database}_partial"
    asyncio.run(
        _admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)', f'CREATE DATABASE "{scratch}"')
    )
    process_env = saleor_process_env(saleor_settings(scratch, port=8000), env)
    manage: list[str | Path] = [env.python, "manage.py"]
    _run([*manage, "migrate", "--no-input"], what="migrate", cwd=env.source, env=process_env)
    _run(
        [*manage, "populatedb", "--createsuperuser"],
        what="populatedb --createsuperuser",
        cwd=env.source,
        env=process_env,
    )
    asyncio.run(
        _admin(
            f'ALTER DATABASE "{scratch}" RENAME TO "{env.template_database}"',
            f'ALTER DATABASE "{env.template_database}" WITH IS_TEMPLATE true',
        )
    )


def ensure_environment(tarball: Path | None = None) -> Environment:
    """Build whatever is missing (minutes the first time, a second afterwards)."""
    source = tarball or tarball_path()
    env = Environment.for_tarball(source)
    with _build_lock(env):
        started = time.monotonic()
        _unpack(env, source)
        _sync_dependencies(env)
        _build_template(env)
        elapsed = time.monotonic() - started
        if elapsed > 5:
            _log(f"Saleor {SALEOR_VERSION} environment built in {elapsed:.0f} s at {env.home}")
    return env


# -- per-run databases -----------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create_run_database(env: Environment) -> str:
    """A fresh copy of the template for this process; copies left by dead runs are dropped."""
    (rows,) = asyncio.run(
        _admin(f"SELECT datname FROM pg_database WHERE datname LIKE '{RUN_DATABASE_PREFIX}%'")
    )
    stale = []
    for row in rows:  # type: ignore[attr-defined]
        name = row["datname"]
        match = re.fullmatch(rf"{RUN_DATABASE_PREFIX}(\d+)_[0-9a-f]+", name)
        if match and not _pid_alive(int(match.group(1))):
            stale.append(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if stale:
        asyncio.run(_admin(*stale))
    name = f"{RUN_DATABASE_PREFIX}{os.getpid()}_{os.urandom(4).hex()}"
    for attempt in range(10):
        try:
            asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{env.template_database}"'))
            return name
        except Exception as exc:  # the template is briefly busy while another run copies it
            if "being accessed by other users" not in str(exc) or attempt == 9:
                raise
            time.sleep(0.5 + attempt * 0.5)
    raise AssertionError("unreachable")


def drop_run_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, default=None)
    args = parser.parse_args()
    try:
        env = ensure_environment(args.tarball)
    except SaleorUnavailable as exc:
        _log(f"cannot run the real Saleor: {exc}")
        raise SystemExit(2) from None
    print(  # noqa: T201
        json.dumps({"home": str(env.home), "template_database": env.template_database})
    )


if __name__ == "__main__":
    main()
