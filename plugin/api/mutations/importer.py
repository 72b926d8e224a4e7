"""`importStart`: import (or resume importing) the shop's history from Saleor."""

from __future__ import annotations

import strawberry

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import Conflict
from plugin.api.fields import mutation as api_mutation
from plugin.api.types.importer import ImportRun
from plugin.importer.service import ImportUnavailable, failures_of, start_import


@strawberry.type
class ImporterMutations:
    @api_mutation(
        "Import the shop's customers, checkouts and orders from Saleor in the background. "
        "A run in progress is returned as is; a failed or cancelled one resumes where it "
        "stopped; after a finished one a new run brings what changed (nothing is imported "
        "twice). Follow it with `importRun`. Needs MANAGE_USERS and MANAGE_APPS."
    )
    async def import_start(self, info: Info) -> ImportRun:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        by = viewer.email or (f"api-token:{viewer.token_id}" if viewer.token_id else "staff")
        async with ctx.write() as session:
            try:
                run = await start_import(session, viewer.installation_id, requested_by=by)
            except ImportUnavailable as exc:
                raise Conflict(str(exc)) from None
            failures = await failures_of(session, run.id)
            result = ImportRun.of(run, failures)
        return result
