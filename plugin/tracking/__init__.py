"""Parcel tracking: shipments from Saleor fulfillments, carrier adapters, polling, alerts."""
