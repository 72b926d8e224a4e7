"""Notes staff write on a customer card."""
