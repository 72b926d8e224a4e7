"""The app's default port is not one a local Saleor already uses (issue 15.7), and the
settings, the Makefile and the README say the same port."""

from __future__ import annotations

import re

from plugin.settings import Settings
from tests.saleor_schema import REPO

SALEOR_PORTS = {8000, 9000}  # Saleor's API and its dashboard


def test_default_port_is_free_of_saleor_and_said_the_same_everywhere() -> None:
    port = Settings.model_fields["port"].default
    assert port not in SALEOR_PORTS
    makefile = re.search(r"^PORT \?= (\d+)$", (REPO / "Makefile").read_text(), re.M)
    assert makefile is not None
    assert int(makefile.group(1)) == port
    readme = (REPO / "README.md").read_text()
    assert f"http://0.0.0.0:{port} " in readme
    assert f"| `HOST`, `PORT` | `0.0.0.0`, `{port}` |" in readme
    assert f"--port {port} " in readme


def test_local_development_says_how_a_separate_dashboard_frames_the_app() -> None:
    readme = (REPO / "README.md").read_text()
    local = readme.split("**Local development")[1].split("\n## ")[0]
    assert "DASHBOARD_ORIGINS=http://localhost:9000" in local
