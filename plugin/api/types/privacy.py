"""Results of the GDPR and merge mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from plugin.api.types.customer import Customer
from plugin.profiles.manual_merge import MergePlan
from plugin.profiles.privacy import Erasure, plain


@strawberry.type(description="Everything the CRM holds on one customer, for an access request.")
class CustomerExport:
    customer_id: strawberry.ID
    generated_at: datetime
    document: JSON = strawberry.field(
        description="Profile, identities with consent, tags, notes, orders and checkouts "
        "with lines, fulfillments, timeline and segments (format saleor-crm.customer-export/1)."
    )


@strawberry.type(description="What an erasure touched; the customer keeps anonymous figures.")
class CustomerErasure:
    customer: Customer
    identities: int
    orders: int
    checkouts: int
    fulfillments: int
    timeline_entries: int
    notes: int
    inbox_events: int = strawberry.field(description="Raw webhook bodies naming the person.")

    @classmethod
    def of(cls, customer: Customer, erasure: Erasure) -> CustomerErasure:
        return cls(
            customer=customer,
            identities=erasure.identities,
            orders=erasure.orders,
            checkouts=erasure.checkouts,
            fulfillments=erasure.fulfillments,
            timeline_entries=erasure.timeline_entries,
            notes=erasure.notes,
            inbox_events=erasure.inbox_events,
        )


@strawberry.type(description="A profile field on which the two customers differ.")
class MergeFieldChoice:
    field: str
    value: JSON | None = strawberry.field(description="The value the survivor keeps.")
    from_source: bool = strawberry.field(description="True when the source's value wins.")


@strawberry.type(description="What a merge moves (or moved) from the source to the target.")
class CustomerMergeResult:
    preview: bool
    customer: Customer = strawberry.field(
        description="The target: unchanged in a preview, the survivor after a merge."
    )
    orders: int
    checkouts: int
    identities: int
    notes: int
    tags: int = strawberry.field(description="Tags the target gains.")
    fields: list[MergeFieldChoice]

    @classmethod
    def of(cls, customer: Customer, plan: MergePlan, *, preview: bool) -> CustomerMergeResult:
        return cls(
            preview=preview,
            customer=customer,
            orders=plan.orders,
            checkouts=plan.checkouts,
            identities=plan.identities,
            notes=plan.notes,
            tags=plan.tags,
            fields=[
                MergeFieldChoice(
                    field=c.field,
                    value=JSON(plain(c.value)) if c.value is not None else None,
                    from_source=c.source,
                )
                for c in plan.fields
            ],
        )
