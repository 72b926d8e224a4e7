"""Test doubles for the outside world that speak its real protocol: a Saleor instance."""

from tests.simulator.server import SaleorSimulator, global_id
from tests.simulator.shop import Event, FakeShop

__all__ = ["Event", "FakeShop", "SaleorSimulator", "global_id"]
