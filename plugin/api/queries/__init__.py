"""Query root fields, one mixin per domain."""
