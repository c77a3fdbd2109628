"""Plain Django views (sync, with the ORM): the lobby, a room's page, a JSON listing.

The chat itself happens over the room page's WebSocket (``consumers.ChatConsumer``);
these views only serve pages. Logging in and out are Django's own views, and
``urls.py`` wraps the lobby and the room in ``login_required``.
"""

from __future__ import annotations

from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from examples.django_project.chat.models import ROOM_MAX_LENGTH, Message, is_room_name

#: How many rooms the lobby lists (the most recently active first).
LOBBY_ROOMS = 20


def index(request: HttpRequest) -> HttpResponse:
    """A plain text page."""
    return HttpResponse("achannels Django example\n", content_type="text/plain")


def lobby(request: HttpRequest) -> HttpResponse:
    """The rooms with recent messages, and a form to enter any room (``?room=``)."""
    room = request.GET.get("room", "").strip()
    if room and is_room_name(room):
        return redirect("room", room=room)
    rooms = (
        Message.objects.values("room")
        .annotate(last=Max("created"), messages=Count("id"))
        .order_by("-last")[:LOBBY_ROOMS]
    )
    context = {"rooms": rooms, "room": room, "invalid": bool(room), "max_length": ROOM_MAX_LENGTH}
    return render(request, "chat/lobby.html", context)


def room(request: HttpRequest, room: str) -> HttpResponse:
    """A room's page: its script opens the room's WebSocket, which sends the history."""
    if not is_room_name(room):
        raise Http404("No such room")
    return render(request, "chat/room.html", {"room": room})


def room_messages(request: HttpRequest, room: str) -> JsonResponse:
    """The room's stored messages, oldest first (logged-in users only: 403 otherwise)."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in to read the rooms"}, status=403)
    texts = list(Message.objects.filter(room=room).values_list("text", flat=True))
    return JsonResponse({"room": room, "count": len(texts), "texts": texts})
