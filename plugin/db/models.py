"""Imports every model, so `Base.metadata` is complete for Alembic and tests."""

from plugin.commerce.models import Checkout, CheckoutLine, Fulfillment, Order, OrderLine
from plugin.db.base import Base
from plugin.inbox.models import InboxEvent
from plugin.profiles.models import Identity, Profile, ProfileTotal
from plugin.saleor.models import Installation
from plugin.segments.models import (
    RfmBoundaries,
    Segment,
    SegmentDailyCount,
    SegmentMembership,
)
from plugin.timeline.models import TimelineEntry

__all__ = [
    "Base",
    "Checkout",
    "CheckoutLine",
    "Fulfillment",
    "Identity",
    "InboxEvent",
    "Installation",
    "Order",
    "OrderLine",
    "Profile",
    "ProfileTotal",
    "RfmBoundaries",
    "Segment",
    "SegmentDailyCount",
    "SegmentMembership",
    "TimelineEntry",
]
