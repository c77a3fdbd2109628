"""The stored chat messages, and what a room's name may be."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models

#: The longest room name: ``chat_<room>`` must stay a valid layer group name
#: (fewer than 100 characters).
ROOM_MAX_LENGTH = 64
_ROOM_NAME = re.compile(r"[-a-zA-Z0-9_]+")


def is_room_name(name: str) -> bool:
    """Return whether ``name`` can name a room: an ASCII slug, at most 64 characters.

    The URL patterns use Django's ``slug`` converter, which matches the same characters.
    """
    return len(name) <= ROOM_MAX_LENGTH and _ROOM_NAME.fullmatch(name) is not None


class Message(models.Model):  # type: ignore[misc]  # Django has no type stubs here
    """A message posted to a room.

    ``user`` is who wrote it in the chat; it is empty for messages stored by the
    ``archive`` worker, and for a user deleted since.
    """

    room = models.CharField(max_length=100, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_messages",
    )
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.room}: {self.text}"
