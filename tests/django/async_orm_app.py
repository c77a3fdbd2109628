"""A consumer and a view that use Django's async ORM, for ``test_async_orm.py``.

``application`` serves ``/ws/orm/<room>/`` (:class:`OrmConsumer`) and Django's views;
a server subprocess runs it as ``tests.django.async_orm_app:application`` with the
example project's settings. ``urlpatterns`` is the URLconf of the in-process view
tests (``ROOT_URLCONF="tests.django.async_orm_app"``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.urls import path

from achannels.django import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")
django_asgi_app = get_asgi_application()

from achannels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from achannels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from examples.django_project.chat.models import Message  # noqa: E402


class OrmConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/orm/<room>/``: the room's texts on connect; each ``{"text": ...}`` is stored.

    Every step is one of Django's async ORM calls: ``async for`` over a queryset,
    ``acreate``, ``aget``, ``aupdate`` (the text is stored upper-cased), ``afirst``
    and ``acount``. The reply gives what they returned.
    """

    room: str

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.accept()
        await self.send_json({"history": await room_texts(self.room)})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        created = await Message.objects.acreate(room=self.room, text=content["text"])
        fetched = await Message.objects.aget(pk=created.pk)
        rooms = Message.objects.filter(room=self.room)
        updated = await rooms.filter(pk=fetched.pk).aupdate(text=fetched.text.upper())
        first = await rooms.afirst()
        assert first is not None
        reply = {
            "id": fetched.pk,
            "updated": updated,
            "first": first.text,
            "count": await rooms.acount(),
            "texts": await room_texts(self.room),
        }
        await self.send_json(reply)


async def room_texts(room: str) -> list[str]:
    """The texts stored for ``room``, oldest first (``async for`` over a queryset)."""
    return [message.text async for message in Message.objects.filter(room=room)]


async def orm_view(request: HttpRequest, room: str) -> JsonResponse:
    """An async view: stores a message, counts the room's, and names its threads."""
    await Message.objects.acreate(room=room, text="from a view")
    return JsonResponse(
        {
            "count": await Message.objects.filter(room=room).acount(),
            "texts": await room_texts(room),
            "sync_thread": await sync_to_async(current_thread_name)(),
        }
    )


def current_thread_name() -> str:
    """The name of the calling thread."""
    return threading.current_thread().name


urlpatterns = [path("orm/<str:room>/", orm_view)]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/orm/<str:room>/", OrmConsumer.as_asgi())]),
    }
)
