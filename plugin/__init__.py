"""Saleor CRM: the app's core (settings, database, Saleor platform layer, CRM domain)."""

__version__ = "0.1.0"
