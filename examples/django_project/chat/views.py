"""Plain Django views (sync, with the ORM)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from examples.django_project.chat.models import Message


def index(request: HttpRequest) -> HttpResponse:
    """A plain text page."""
    return HttpResponse("achannels Django example\n", content_type="text/plain")


def room_messages(request: HttpRequest, room: str) -> JsonResponse:
    """The room's stored messages, oldest first."""
    texts = list(Message.objects.filter(room=room).values_list("text", flat=True))
    return JsonResponse({"room": room, "count": len(texts), "texts": texts})
