"""The HTTP routes, served by ``django_asgi_app`` (WebSocket routes: ``chat/routing.py``)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from examples.django_project.chat import views

urlpatterns = [
    path("", views.index, name="index"),
    # Django's own views, with the template ``chat/templates/registration/login.html``.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The chat's pages: for logged-in users (others go to the login page first).
    path("chat/", login_required(views.lobby), name="lobby"),
    path("chat/<slug:room>/", login_required(views.room), name="room"),
    path("rooms/<str:room>/messages/", views.room_messages, name="room-messages"),
    # The apps' static files (CSS, the room's script), with DEBUG on only, as under
    # ``runserver``; in production serve ``collectstatic``'s folder in front instead.
    *staticfiles_urlpatterns(),
]
