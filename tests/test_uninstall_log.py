"""An uninstall leaves a structured log line naming the shop and the event (issue 15.7)."""

from __future__ import annotations

import json
import logging

import pytest

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.ops.logging import JsonFormatter
from plugin.saleor.installations import uninstall
from tests.conftest import new_installation


async def test_an_uninstall_is_logged_with_installation_and_event(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    installation_id = await new_installation(db, app_id="QXBwOjc=")
    with caplog.at_level(logging.INFO, logger="plugin.lifecycle.uninstall"):
        async with unit_of_work(db) as session:
            await uninstall(session, installation_id, {"app": {"id": "QXBwOjc="}})
        async with unit_of_work(db) as session:  # a second APP_DELETED logs nothing new
            await uninstall(session, installation_id, {"app": {"id": "QXBwOjc="}})
    lines = [
        json.loads(JsonFormatter().format(record))
        for record in caplog.records
        if record.getMessage() == "app uninstalled"
    ]
    assert len(lines) == 1
    assert lines[0]["installation_id"] == installation_id
    assert lines[0]["event"] == "app_deleted"
    assert lines[0]["level"] == "info"
