"""Saleor webhook endpoints: verify, store in the inbox, answer. Folding happens in jobs."""
