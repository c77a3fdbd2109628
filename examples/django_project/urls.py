"""Plain Django views, served over HTTP by ``django_asgi_app``."""

from __future__ import annotations

from django.urls import path

from examples.django_project.chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("rooms/<str:room>/messages/", views.room_messages, name="room-messages"),
]
