"""The project's ASGI application: Django views over HTTP, consumers over WebSocket.

Serve it with ``hypercorn -k trio examples.django_project.asgi:application`` (or
``-k asyncio``), or ``python -m achannels serve examples.django_project.asgi:application``.
"""

from __future__ import annotations

import os

from achannels.django import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")
# Set Django up before importing anything that imports models. achannels' handler
# runs Django's HTTP request cycle on trio as well as asyncio;
# ``django.core.asgi.get_asgi_application`` works on asyncio only.
django_asgi_app = get_asgi_application()

from achannels.auth import AuthMiddlewareStack  # noqa: E402
from achannels.routing import (  # noqa: E402
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
)
from achannels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from examples.django_project.chat.routing import (  # noqa: E402
    channel_routes,
    websocket_urlpatterns,
)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Only pages of this site (``Origin`` in ``ALLOWED_HOSTS``) may open a socket
        # with the user's cookies; then the Django session and ``scope["user"]``.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        # Served by ``manage.py runworker archive``.
        "channel": ChannelNameRouter(channel_routes),
    }
)
