"""Strawberry object types, one domain per module."""
