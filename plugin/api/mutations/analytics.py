"""Ad costs, entered by staff so ROI per source can be shown (MANAGE_ORDERS)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import strawberry

from plugin.analytics import ad_costs
from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput, NotFound
from plugin.api.fields import mutation as api_mutation
from plugin.api.ids import from_global_id
from plugin.api.types.analytics import AdCost


@strawberry.input(description="Spend on one source over whole UTC days, both included.")
class AdCostInput:
    source: str
    day_from: date
    day_to: date
    amount: Decimal
    currency: str
    medium: str | None = None
    campaign: str | None = None


@strawberry.type
class AnalyticsMutations:
    @api_mutation("Record advertising spend on a source. Needs MANAGE_ORDERS.")
    async def ad_cost_add(self, info: Info, input: AdCostInput) -> AdCost:
        ctx = info.context
        viewer = ctx.require(*permissions.ANALYTICS)
        try:
            async with ctx.write() as session:
                entry = await ad_costs.add_ad_cost(
                    session,
                    viewer.installation_id,
                    source=input.source,
                    day_from=input.day_from,
                    day_to=input.day_to,
                    amount=input.amount,
                    currency=input.currency,
                    medium=input.medium,
                    campaign=input.campaign,
                )
        except ad_costs.InvalidAdCost as invalid:
            raise InvalidInput(f"Invalid ad cost: {invalid}.", field="input") from None
        return AdCost.of(entry)

    @api_mutation("Delete an ad cost entry; returns its id. Needs MANAGE_ORDERS.")
    async def ad_cost_delete(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        ctx = info.context
        viewer = ctx.require(*permissions.ANALYTICS)
        pk = from_global_id("AdCost", id)
        async with ctx.write() as session:
            deleted = await ad_costs.delete_ad_cost(session, viewer.installation_id, pk)
        if not deleted:
            raise NotFound("No such ad cost.", field="id")
        return id
