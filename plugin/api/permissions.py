"""Saleor permissions the API checks, taken from the token (PLATFORM.md §7, issue #4 §2)."""

from __future__ import annotations

import enum

import strawberry


@strawberry.enum(description="A Saleor permission, as carried by the dashboard token.")
class Permission(enum.StrEnum):
    MANAGE_USERS = "MANAGE_USERS"
    MANAGE_ORDERS = "MANAGE_ORDERS"
    MANAGE_CHECKOUTS = "MANAGE_CHECKOUTS"
    MANAGE_APPS = "MANAGE_APPS"


# Customers, notes, tags and consent.
CUSTOMERS = (Permission.MANAGE_USERS,)
ORDERS = (Permission.MANAGE_ORDERS,)
CHECKOUTS = (Permission.MANAGE_CHECKOUTS,)
# Analytics reports (sales figures) and the ad costs behind ROI.
ANALYTICS = (Permission.MANAGE_ORDERS,)
# Configuration (segments, API tokens): staff who may manage customers *and* apps.
CONFIGURATION = (Permission.MANAGE_USERS, Permission.MANAGE_APPS)

# Timeline entries about orders or checkouts need the same permission as the objects.
TIMELINE_KIND_PERMISSIONS = {
    "order_": Permission.MANAGE_ORDERS,
    "fulfillment_": Permission.MANAGE_ORDERS,
    "shipment_": Permission.MANAGE_ORDERS,
    "checkout_": Permission.MANAGE_CHECKOUTS,
}
