"""The communicators under pytest-asyncio's auto mode (no marks)."""
