"""`importRun`: progress of the shop's history import (MANAGE_USERS)."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import NotFound
from plugin.api.fields import field as api_field
from plugin.api.ids import from_global_id
from plugin.api.types.importer import ImportRun
from plugin.importer import models
from plugin.importer.service import FAILURES_SHOWN


@strawberry.type
class ImporterQueries:
    @api_field(
        "An import of the shop's history: the latest when no id is given (null before the "
        "first). Poll it for the import page's progress bar. Needs MANAGE_USERS."
    )
    async def import_run(self, info: Info, id: strawberry.ID | None = None) -> ImportRun | None:
        viewer = info.context.require(*permissions.CUSTOMERS)
        query = select(models.ImportRun).where(
            models.ImportRun.installation_id == viewer.installation_id
        )
        if id is not None:
            query = query.where(models.ImportRun.id == from_global_id("ImportRun", id))
        rows = await info.context.scalars(query.order_by(models.ImportRun.id.desc()).limit(1))
        if not rows:
            if id is not None:
                raise NotFound("No such import run.", field="id")
            return None
        failures = await info.context.scalars(
            select(models.ImportFailure)
            .where(models.ImportFailure.run_id == rows[0].id)
            .order_by(models.ImportFailure.id)
            .limit(FAILURES_SHOWN)
        )
        return ImportRun.of(rows[0], failures)
