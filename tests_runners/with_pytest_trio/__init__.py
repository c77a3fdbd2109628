"""The communicators under pytest-trio, with ``@pytest.mark.trio``."""
