"""The Django app ``achannels``: what ``"channels"`` in ``INSTALLED_APPS`` becomes.

Django imports this module only when ``"achannels"`` is installed as an app;
``import achannels`` does not import it (nor Django).
"""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["AchannelsConfig"]


class AchannelsConfig(AppConfig):  # type: ignore[misc]  # Django has no type stubs here
    """Provides the ``runworker`` management command; it has no models."""

    name = "achannels"
    label = "achannels"
    verbose_name = "achannels"
