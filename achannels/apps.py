"""The Django app ``achannels``: what ``"channels"`` in ``INSTALLED_APPS`` becomes.

Django imports this module only when ``"achannels"`` is installed as an app;
``import achannels`` does not import it (nor Django).
"""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

__all__ = ["AchannelsConfig"]


class AchannelsConfig(AppConfig):  # type: ignore[misc]  # Django has no type stubs here
    """Provides the ``runworker`` management command; it has no models."""

    name = "achannels"
    label = "achannels"
    verbose_name = "achannels"

    def ready(self) -> None:
        """Make Django's async paths work on trio; register the ``runserver`` check."""
        from achannels.django._asgiref import install_trio_support
        from achannels.django.apps import check_runserver

        install_trio_support()
        checks.register(check_runserver)
