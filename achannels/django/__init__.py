"""The Django integration: an app for ``INSTALLED_APPS`` and the ``runworker`` command.

Add ``"achannels"`` (what renaming ``"channels"`` gives) or ``"achannels.django"`` to
``INSTALLED_APPS``; either provides ``manage.py runworker`` and makes Django's async
paths (the async ORM, ``sync_to_async``, ``Signal.asend``) work under trio
(:func:`install_trio_support`; :func:`get_asgi_application` calls it too).
Listed before ``"django.contrib.staticfiles"``, either also provides ``manage.py
runserver``, which serves ``ASGI_APPLICATION`` with hypercorn in development
(WebSockets included, autoreloader, static files). In production serve it with
hypercorn (``hypercorn -k trio project.asgi:application``) or ``python -m achannels
serve project.asgi:application``, which adds a graceful WebSocket shutdown.

This package is the only one in achannels that imports Django at import time.
"""

from __future__ import annotations

from achannels.django._application import get_default_application
from achannels.django._asgiref import install_trio_support
from achannels.django._handler import DjangoHandler, StaticFilesHandler, get_asgi_application

__all__ = [
    "DjangoHandler",
    "StaticFilesHandler",
    "get_asgi_application",
    "get_default_application",
    "install_trio_support",
]
