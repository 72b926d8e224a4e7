"""Backfill of a shop's history from Saleor (customers, checkouts, orders) on install."""
