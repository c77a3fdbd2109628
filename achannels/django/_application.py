"""Find the project's ASGI application from ``settings.ASGI_APPLICATION``."""

from __future__ import annotations

import importlib

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from achannels._asgi import ASGIApp

__all__ = ["get_default_application"]


def get_default_application() -> ASGIApp:
    """Import and return the application named by ``settings.ASGI_APPLICATION``.

    As ``channels.routing.get_default_application``: the setting is a dotted path,
    ``"project.asgi.application"``.

    Raises:
        ImproperlyConfigured: the setting is missing, or names nothing importable.
    """
    try:
        module_name, name = settings.ASGI_APPLICATION.rsplit(".", 1)
    except (ValueError, AttributeError):
        raise ImproperlyConfigured("Cannot find ASGI_APPLICATION setting.") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        message = f"Cannot import ASGI_APPLICATION module {module_name!r}"
        raise ImproperlyConfigured(message) from exc
    try:
        application: ASGIApp = getattr(module, name)
    except AttributeError:
        raise ImproperlyConfigured(
            f"Cannot find {name!r} in ASGI_APPLICATION module {module_name}"
        ) from None
    return application
