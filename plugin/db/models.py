"""Imports every model, so `Base.metadata` is complete for Alembic and tests."""

from plugin.analytics.models import AdCost, CustomerMonth, FunnelHour, RollupState
from plugin.api.models import ApiToken
from plugin.commerce.models import Checkout, CheckoutLine, Fulfillment, Order, OrderLine
from plugin.db.base import Base
from plugin.importer.models import ImportFailure, ImportRun
from plugin.inbox.models import InboxEvent
from plugin.messaging.models import (
    Flow,
    FlowRun,
    Message,
    MessageTemplate,
    MessagingSettings,
    TopicOptOut,
    Undeliverable,
)
from plugin.notes.models import Note
from plugin.predictions.models import PredictionModel
from plugin.profiles.models import Identity, Profile, ProfileTag, ProfileTotal
from plugin.saleor.models import Installation
from plugin.segments.models import (
    RfmBoundaries,
    Segment,
    SegmentDailyCount,
    SegmentMembership,
)
from plugin.timeline.models import TimelineEntry
from plugin.tracking.models import CarrierAccount, CarrierWebhook, Checkpoint, Shipment

__all__ = [
    "AdCost",
    "ApiToken",
    "Base",
    "CarrierAccount",
    "CarrierWebhook",
    "Checkout",
    "CheckoutLine",
    "Checkpoint",
    "CustomerMonth",
    "Fulfillment",
    "FunnelHour",
    "Flow",
    "FlowRun",
    "Identity",
    "ImportFailure",
    "ImportRun",
    "InboxEvent",
    "Message",
    "MessageTemplate",
    "MessagingSettings",
    "Note",
    "Installation",
    "Order",
    "OrderLine",
    "PredictionModel",
    "Profile",
    "ProfileTag",
    "ProfileTotal",
    "RfmBoundaries",
    "RollupState",
    "Segment",
    "SegmentDailyCount",
    "SegmentMembership",
    "Shipment",
    "TimelineEntry",
    "TopicOptOut",
    "Undeliverable",
]
