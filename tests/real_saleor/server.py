"""A real Saleor served by uvicorn with two workers, on loopback, on its own database copy.

Two workers because Saleor runs its tasks in the request without a Celery broker: during
`appInstall` it POSTs the token to the app inside the mutation, and the app proves the
token by calling Saleor back, which only a second worker can answer. The process runs in
its own process group so that stopping it stops its workers too; its output goes to a log
file whose tail is shown when something fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.real_saleor.environment import Environment, saleor_process_env, saleor_settings

START_TIMEOUT = 300.0  # one import of Saleor: ~15 s when quiet, minutes on a busy machine
SERVE = Path(__file__).with_name("serve.py")


def new_rsa_private_key() -> str:
    """A PEM signing key for Saleor (`RSA_PRIVATE_KEY`): its JWTs and webhook signatures."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SaleorServer:
    """Start, stop and restart one Saleor; the port stays, so the app sees the same shop."""

    def __init__(self, env: Environment, database: str, log_path: Path) -> None:
        self.env = env
        self.database = database
        self.log_path = log_path
        self.port = free_loopback_port()
        self.rsa_private_key = new_rsa_private_key()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What Saleor sends as `Saleor-Api-Url` (PUBLIC_URL + graphql/)."""
        return f"{self.base_url}/graphql/"

    def start(self) -> None:
        settings = saleor_settings(
            self.database, port=self.port, rsa_private_key=self.rsa_private_key
        )
        # uvicorn, two workers, Saleor loaded once before forking them (see serve.py).
        command = [str(self.env.python), str(SERVE), "127.0.0.1", str(self.port), "2"]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self.env.source,
                env=saleor_process_env(settings, self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Saleor exited with {self._process.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                answer = httpx.post(self.api_url, json={"query": "{ shop { name } }"}, timeout=10)
                if answer.status_code == 200 and answer.json().get("data"):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"Saleor did not serve within {START_TIMEOUT:.0f} s:\n" + self.log_tail()
                )
            time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM to the server's own process group (uvicorn and its workers), then
        SIGKILL if it is still there after 20 s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        group = os.getpgid(process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            process.wait(timeout=10)
        # Workers outlive their parent for a moment; none may stay behind.
        for _ in range(50):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart(self, *, rsa_private_key: str | None = None) -> None:
        """Stop and start again on the same port and database, with a new signing key
        when one is given."""
        self.stop()
        if rsa_private_key is not None:
            self.rsa_private_key = rsa_private_key
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no Saleor log)"
        return "\n".join(text.splitlines()[-lines:])
