"""Per-customer predictions: still active, next order, value over the next 12 months."""
