"""The Django app ``achannels.django`` (label ``achannels_django``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks

__all__ = ["AchannelsDjangoConfig", "check_runserver"]


class AchannelsDjangoConfig(AppConfig):  # type: ignore[misc]  # Django has no type stubs here
    """Provides the ``runworker`` management command; it has no models."""

    name = "achannels.django"
    label = "achannels_django"
    verbose_name = "achannels (Django integration)"

    def ready(self) -> None:
        """Make Django's async paths work on trio; register the ``runserver`` check."""
        from achannels.django._asgiref import install_trio_support

        install_trio_support()
        checks.register(check_runserver)


def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when an app listed before achannels provides ``runserver`` instead.

    Django takes each command from the first app in ``INSTALLED_APPS`` that has it,
    so ``"django.contrib.staticfiles"`` (or ``"daphne"``) above ``"achannels"`` hides
    achannels' ``runserver``, and WebSockets get Django's 404 page.
    """
    from django.core.management import get_commands

    provider = get_commands().get("runserver")
    if provider in ("achannels", "achannels.django"):
        return []
    return [
        checks.Warning(
            f"'runserver' is {provider}'s, not achannels': it does not serve "
            "ASGI_APPLICATION's WebSockets.",
            hint=f"List 'achannels' before {provider!r} in INSTALLED_APPS.",
            id="achannels.W001",
        )
    ]
