"""WebSocket routes and background-worker channels of the chat app."""

from __future__ import annotations

from django.urls import path

from achannels._asgi import ASGIApp
from examples.django_project.chat import consumers

websocket_urlpatterns = [
    path("ws/chat/<slug:room>/", consumers.ChatConsumer.as_asgi()),
    path("ws/log/<slug:room>/", consumers.MessageLogConsumer.as_asgi()),
    path("ws/whoami/", consumers.WhoAmIConsumer.as_asgi()),
]

channel_routes: dict[str, ASGIApp] = {
    "archive": consumers.ArchiveConsumer.as_asgi(),
}
