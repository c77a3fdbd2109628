"""The stored chat messages."""

from __future__ import annotations

from django.db import models


class Message(models.Model):  # type: ignore[misc]  # Django has no type stubs here
    """A message posted to a room (by the log consumer or the archive worker)."""

    room = models.CharField(max_length=100, db_index=True)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.room}: {self.text}"
