"""The communicators under pytest-trio's ``trio_mode = true`` (no marks)."""
