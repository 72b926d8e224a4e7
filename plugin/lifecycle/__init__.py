"""The data lifecycle: uninstall and purge, retention of raw payloads and message bodies."""
