"""The consumers, written as for Channels (only the imports say ``achannels``).

* :class:`ChatConsumer` (async): a chat room for logged-in users. Each message is
  stored with Django's async ORM and relayed to the room's layer group with its
  author's name; a user who joins first gets the room's recent history.
* :class:`MessageLogConsumer` (sync, JSON): stores each message with the ORM and
  answers with the room's message count (logged-in users only).
* :class:`WhoAmIConsumer` (async, JSON): tells the client who it is logged in as,
  from ``scope["user"]`` (``AuthMiddlewareStack`` in ``asgi.py``).
* :class:`ArchiveConsumer` (sync, a background worker): stores the messages sent to
  the ``archive`` layer channel; run it with ``manage.py runworker archive``.

The chat's protocol, JSON in text frames. The client sends ``{"message": "..."}``.
The server sends, in this order after the handshake:

* ``{"type": "history", "messages": [message, ...]}``: the room's last
  :data:`HISTORY_LENGTH` messages, oldest first; then, as they happen,
* ``{"type": "message", "id", "user", "message", "created"}`` (a *message*; ``user``
  is ``null`` for a message without an author, such as an archived one),
* ``{"type": "join", "user"}`` and ``{"type": "leave", "user"}``,
* ``{"type": "error", "error": "..."}``, to the sender of a message that was refused.
"""

from __future__ import annotations

import json
from typing import Any

from achannels.consumer import SyncConsumer
from achannels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
)
from examples.django_project.chat.models import Message, is_room_name

#: The close code after a client sends ``/quit`` to a chat room.
QUIT_CODE = 4000
#: The close code after a client sends something that is not ``{"message": "<text>"}``
#: (``{"text": "<text>"}`` to the log consumer).
BAD_MESSAGE_CODE = 4400
#: The room that refuses every connection (HTTP 403), to show a refusal.
CLOSED_ROOM = "closed"
#: How many of a room's latest messages a user gets on joining.
HISTORY_LENGTH = 50
#: The longest message the chat stores; longer ones are refused with an error.
MAX_MESSAGE_LENGTH = 2000


def room_group(room: str) -> str:
    """Return the layer group of ``room`` (a valid room name gives a valid group name)."""
    return f"chat_{room}"


def as_event(message: Message) -> dict[str, Any]:
    """Return what clients see of a stored ``message`` (its ``user`` must be loaded)."""
    return {
        "id": message.pk,
        "user": message.user.get_username() if message.user is not None else None,
        "message": message.text,
        "created": message.created.isoformat(),
    }


def message_text(text_data: str | None) -> str | None:
    """Return the text of a client's ``{"message": "<text>"}`` frame, or None if it is not one."""
    try:
        content = json.loads(text_data or "")
    except ValueError:
        return None
    text = content.get("message") if isinstance(content, dict) else None
    return text if isinstance(text, str) else None


class ChatConsumer(AsyncWebsocketConsumer):
    """``/ws/chat/<room>/``: a chat room, for logged-in users (others get HTTP 403).

    The room :data:`CLOSED_ROOM` refuses everyone. Sending ``/quit`` closes the
    connection with :data:`QUIT_CODE`; a frame that is not ``{"message": "<text>"}``
    closes it with :data:`BAD_MESSAGE_CODE`.
    """

    room: str
    username: str
    group_name: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The ids of the messages sent in the history: their live events may arrive
        # after it (they were stored between joining the group and loading the
        # history), and must not be shown twice.
        self.history_ids: set[int] = set()

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        user = self.scope["user"]
        if not user.is_authenticated or self.room == CLOSED_ROOM or not is_room_name(self.room):
            await self.close()  # before accept: the server answers 403
            return
        self.username = user.get_username()
        assert self.channel_layer is not None
        assert self.channel_name is not None
        # Join before loading the history: a message stored meanwhile then arrives
        # live, in the history, or both (shown once), never in neither.
        self.group_name = room_group(self.room)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        history = await self.load_history()
        self.history_ids = {event["id"] for event in history}
        await self.send_json({"type": "history", "messages": history})
        await self.channel_layer.group_send(
            self.group_name, {"type": "chat.join", "user": self.username}
        )

    async def load_history(self) -> list[dict[str, Any]]:
        """Return the room's last :data:`HISTORY_LENGTH` messages, oldest first."""
        latest = (
            Message.objects.filter(room=self.room)
            .select_related("user")  # the names, in the same query
            .order_by("-id")[:HISTORY_LENGTH]
        )
        history = [as_event(message) async for message in latest]
        history.reverse()
        return history

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None and self.channel_layer and self.channel_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            await self.channel_layer.group_send(
                self.group_name, {"type": "chat.leave", "user": self.username}
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        text = message_text(text_data)
        if text is None:
            await self.close(code=BAD_MESSAGE_CODE)
            return
        text = text.strip()
        if text == "/quit":
            await self.close(code=QUIT_CODE)
        elif len(text) > MAX_MESSAGE_LENGTH:
            error = f"a message has at most {MAX_MESSAGE_LENGTH} characters, not {len(text)}"
            await self.send_json({"type": "error", "error": error})
        elif text:
            await self.post(text)

    async def post(self, text: str) -> None:
        """Store ``text`` as the user's message, then send it to everyone in the room."""
        message = await Message.objects.acreate(room=self.room, user=self.scope["user"], text=text)
        assert self.channel_layer is not None
        assert self.group_name is not None
        await self.channel_layer.group_send(
            self.group_name, {"type": "chat.message", **as_event(message)}
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        if event["id"] not in self.history_ids:
            await self.send_json({**event, "type": "message"})

    async def chat_join(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "join", "user": event["user"]})

    async def chat_leave(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "leave", "user": event["user"]})

    async def send_json(self, content: dict[str, Any]) -> None:
        """Send ``content`` as JSON in a text frame."""
        await self.send(text_data=json.dumps(content))


class MessageLogConsumer(JsonWebsocketConsumer):
    """``/ws/log/<room>/``: ``{"text": ...}`` is saved; the reply gives the room's count.

    Logged-in users only (others get HTTP 403); each message is stored as theirs.
    """

    def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        if not self.scope["user"].is_authenticated or not is_room_name(self.room):
            self.close()
            return
        self.accept()

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        text = content.get("text") if isinstance(content, dict) else None
        if not isinstance(text, str):
            self.close(code=BAD_MESSAGE_CODE)
            return
        saved = Message.objects.create(room=self.room, user=self.scope["user"], text=text)
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
