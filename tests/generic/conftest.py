"""Fixtures for the generic consumer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test.utils import override_settings

from achannels.layers import channel_layers


@pytest.fixture
def no_layer() -> Iterator[None]:
    """Configure no channel layer, whatever other tests left in ``channel_layers``."""
    if not settings.configured:
        settings.configure(USE_I18N=False)
    saved = dict(channel_layers.backends)
    channel_layers.backends.clear()
    try:
        with override_settings(CHANNEL_LAYERS={}):
            yield
    finally:
        channel_layers.backends.clear()
        channel_layers.backends.update(saved)
