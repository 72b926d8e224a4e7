"""GDPR export and erasure, and merging two customers by hand (MANAGE_USERS)."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.auth import Viewer
from plugin.api.context import Info
from plugin.api.errors import Conflict, InvalidInput
from plugin.api.fields import mutation as api_mutation
from plugin.api.ids import to_global_id
from plugin.api.mutations.customers import profile_for
from plugin.api.types.customer import Customer
from plugin.api.types.privacy import CustomerErasure, CustomerExport, CustomerMergeResult
from plugin.profiles.manual_merge import DifferentPeople, merge_into, plan_merge
from plugin.profiles.privacy import anonymize_profile, export_profile
from plugin.segments.membership import reevaluate_profiles
from plugin.timeline.service import record


def _author(viewer: Viewer) -> str:
    return viewer.email or (f"api-token:{viewer.token_id}" if viewer.token_id else "staff")


@strawberry.type
class PrivacyMutations:
    @api_mutation(
        "Everything held on the customer as one JSON document (GDPR access request); "
        "the request is recorded on the timeline. Needs MANAGE_USERS."
    )
    async def customer_export(self, info: Info, id: strawberry.ID) -> CustomerExport:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        async with ctx.write() as session:
            profile = await profile_for(session, viewer, id, field="id")
            document = await export_profile(session, profile, ctx.now)
            await record(
                session,
                installation_id=viewer.installation_id,
                profile_id=profile.id,
                kind="customer_exported",
                occurred_at=ctx.now,
                dedup_key=f"exported:{profile.id}:{ctx.now.isoformat()}",
                summary=f"Personal data exported ({_author(viewer)})",
                data={"by": _author(viewer)},
            )
        return CustomerExport(
            customer_id=strawberry.ID(to_global_id("Customer", profile.id)),
            generated_at=ctx.now,
            document=JSON(document),
        )

    @api_mutation(
        "Erase the customer's personal data everywhere (GDPR); orders, totals, dates and "
        "segment counts stay, anonymous. Contacts are kept only as salted hashes, so "
        "nothing is ever sent to them again. Cannot be undone. Needs MANAGE_USERS."
    )
    async def customer_anonymize(self, info: Info, id: strawberry.ID) -> CustomerErasure:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        async with ctx.write() as session:
            profile = await profile_for(session, viewer, id, field="id")
            erasure = await anonymize_profile(session, profile, ctx.now)
            await reevaluate_profiles(session, viewer.installation_id, [profile.id], ctx.now)
        return CustomerErasure.of(Customer.of(profile), erasure)

    @api_mutation(
        "Merge `sourceId` into `targetId` (the target survives, each field keeps its "
        "newest value, consent stays per address). With `preview` nothing changes: the "
        "answer says what would move. Two different Saleor users never merge (CONFLICT). "
        "Needs MANAGE_USERS."
    )
    async def customer_merge(
        self,
        info: Info,
        source_id: strawberry.ID,
        target_id: strawberry.ID,
        preview: bool = True,
    ) -> CustomerMergeResult:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        async with ctx.write() as session:
            source = await profile_for(session, viewer, source_id, field="sourceId")
            target = await profile_for(session, viewer, target_id, field="targetId")
            if source.id == target.id:
                raise InvalidInput("A customer cannot be merged with itself.", field="sourceId")
            try:
                plan = await plan_merge(session, source, target)
                if not preview:
                    target = await merge_into(session, source, target, ctx.now)
            except DifferentPeople as different:
                raise Conflict(str(different), field="sourceId") from None
        return CustomerMergeResult.of(Customer.of(target), plan, preview=preview)
