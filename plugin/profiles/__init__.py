"""Customer profiles: one per real person, found by Saleor user id, e-mail or phone."""
