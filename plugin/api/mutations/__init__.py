"""Mutation root fields, one mixin per domain. Failures are typed errors (errors.py)."""
