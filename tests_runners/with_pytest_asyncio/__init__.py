"""The communicators under pytest-asyncio's strict mode (``@pytest.mark.asyncio``)."""
