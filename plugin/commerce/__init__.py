"""Orders, checkouts and fulfillments as the CRM keeps them (snapshots of Saleor's)."""
