"""The ``chat`` app."""

from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):  # type: ignore[misc]  # Django has no type stubs here
    """Chat rooms and their stored messages."""

    name = "examples.django_project.chat"
    label = "chat"
