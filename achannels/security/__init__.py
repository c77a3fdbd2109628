"""Security middleware compatible with ``channels.security``."""
