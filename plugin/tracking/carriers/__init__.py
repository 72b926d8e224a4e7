"""Carrier adapters: one interface, one module per carrier API."""
