"""The dedup key of a timeline entry about a Saleor object: the same whichever path brought
it (a webhook, the history import, a redelivery, an inbox replay), so "run twice, adds
nothing twice" holds across paths.

A webhook carries its event's `issuedAt`, the import only the object's own dates, and the
two never agree: so keys are made of what both have. An object is created (or deleted)
once: `order_created:<order id>`. Any other event stands for one state of the object, by
Saleor's `updatedAt` (`checkout_updated:<id>:<updatedAt>`): a second delivery of the same
state, or a second event naming it, adds nothing. A fulfillment has one entry, updated as
its events come (`fulfillment:<id>`, plugin/commerce/fulfillments.py).
"""

from __future__ import annotations

from datetime import datetime

# Entries of these kinds exist once per object.
ONCE_PER_OBJECT = frozenset(
    {"order_created", "checkout_created", "customer_created", "customer_deleted"}
)


def entry_key(kind: str, object_id: str, state_at: datetime) -> str:
    """`state_at`: the object's `updatedAt` (its `issuedAt` where it has none)."""
    if kind in ONCE_PER_OBJECT:
        return f"{kind}:{object_id}"
    return f"{kind}:{object_id}:{state_at.isoformat()}"


def fulfillment_key(fulfillment_id: str) -> str:
    """The one entry of a fulfillment (created, approved, tracking number, cancelled)."""
    return f"fulfillment:{fulfillment_id}"
