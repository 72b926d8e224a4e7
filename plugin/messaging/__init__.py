"""Triggered mailings: flows over the timeline, templates, channels, consent, measuring."""
