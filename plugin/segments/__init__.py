"""Segments: rules over customers, kept current as events arrive."""
