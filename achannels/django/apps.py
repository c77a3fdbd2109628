"""The Django app ``achannels.django`` (label ``achannels_django``)."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["AchannelsDjangoConfig"]


class AchannelsDjangoConfig(AppConfig):  # type: ignore[misc]  # Django has no type stubs here
    """Provides the ``runworker`` management command; it has no models."""

    name = "achannels.django"
    label = "achannels_django"
    verbose_name = "achannels (Django integration)"
