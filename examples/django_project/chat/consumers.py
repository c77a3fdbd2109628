"""The consumers, written as for Channels (only the imports say ``achannels``).

* :class:`ChatConsumer` (async): a chat room, relayed through a layer group.
* :class:`MessageLogConsumer` (sync, JSON): stores each message with the ORM and
  answers with the room's message count.
* :class:`WhoAmIConsumer` (async, JSON): tells the client who it is logged in as,
  from ``scope["user"]`` (``AuthMiddlewareStack`` in ``asgi.py``).
* :class:`ArchiveConsumer` (sync, a background worker): stores the messages sent to
  the ``archive`` layer channel; run it with ``manage.py runworker archive``.
"""

from __future__ import annotations

from typing import Any

from achannels.consumer import SyncConsumer
from achannels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
)
from examples.django_project.chat.models import Message

#: The close code after a client sends ``/quit`` to a chat room.
QUIT_CODE = 4000
#: The close code after a client sends JSON without a ``"text"`` string.
BAD_MESSAGE_CODE = 4400


class ChatConsumer(AsyncWebsocketConsumer):
    """``/ws/chat/<room>/``: every text frame goes to everyone in the room.

    The room ``closed`` refuses connections (HTTP 403). Sending ``/quit`` closes the
    connection with code 4000.
    """

    group_name: str

    async def connect(self) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        if room == "closed":
            await self.close()
            return
        self.group_name = f"chat_{room}"
        assert self.channel_layer is not None
        assert self.channel_name is not None
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group_name") and self.channel_layer and self.channel_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "/quit":
            await self.close(code=QUIT_CODE)
            return
        assert self.channel_layer is not None
        await self.channel_layer.group_send(
            self.group_name, {"type": "chat.message", "text": text_data or ""}
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class MessageLogConsumer(JsonWebsocketConsumer):
    """``/ws/log/<room>/``: ``{"text": ...}`` is saved; the reply gives the room's count."""

    def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.accept()

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        text = content.get("text") if isinstance(content, dict) else None
        if not isinstance(text, str):
            self.close(code=BAD_MESSAGE_CODE)
            return
        saved = Message.objects.create(room=self.room, text=text)
        count = Message.objects.filter(room=self.room).count()
        self.send_json({"id": saved.pk, "text": text, "count": count})


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/whoami/``: on connect, sends ``{"username": ...}`` (``null`` when anonymous).

    The session cookie of a user logged in through Django (``django.contrib.auth``)
    makes ``scope["user"]`` that user.
    """

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        await self.send_json({"username": user.get_username() if user.is_authenticated else None})


class ArchiveConsumer(SyncConsumer):
    """The ``archive`` channel's worker: ``{"type": "archive.message", "room", "text"}``."""

    def archive_message(self, message: dict[str, Any]) -> None:
        Message.objects.create(room=message["room"], text=message["text"])
