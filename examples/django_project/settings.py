"""Settings of the example project (development settings: not for production).

Environment variables:

* ``ACHANNELS_EXAMPLE_DB``: ``sqlite`` (default) or ``postgres``.
* ``ACHANNELS_EXAMPLE_DB_NAME``: the SQLite file (default ``db.sqlite3`` beside this
  file) or the PostgreSQL database (default ``test``).
* ``ACHANNELS_EXAMPLE_PG_HOST`` / ``_PORT`` / ``_USER``: the PostgreSQL server
  (default ``127.0.0.1``, ``5432``, ``postgres``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-achannels-example-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    # After the rename, Channels' "channels" entry: provides ``manage.py runworker``,
    # and ``runserver`` serving the WebSockets too (listed before staticfiles, whose
    # ``runserver`` would win otherwise, as with Daphne's "daphne" entry).
    "achannels",
    # Users and sessions: ``achannels.auth.AuthMiddlewareStack`` gives WebSocket
    # consumers the user logged in through Django (``scope["user"]``).
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "examples.django_project.chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "examples.django_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The chat app's ``templates/``: its pages and ``registration/login.html``.
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

# Django's own login and logout views (``urls.py``); the chat pages need a login.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "lobby"
LOGOUT_REDIRECT_URL = "login"

# Found in the apps' ``static/`` folders. With ``DEBUG`` on, ``urls.py`` serves them
# (so the pages work under hypercorn); ``ChannelsLiveServerTestCase`` serves them in
# tests. In production, ``collectstatic`` into ``STATIC_ROOT`` and serve it in front.
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or None

# Served by hypercorn or ``python -m achannels serve``; read by ``runworker``.
ASGI_APPLICATION = "examples.django_project.asgi.application"

CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    # One process only; several processes share "achannels.layers.redis.RedisChannelLayer"
    # (docs/redis.md).
    "default": {"BACKEND": "achannels.layers.InMemoryChannelLayer"},
}


def _database() -> dict[str, Any]:
    kind = os.environ.get("ACHANNELS_EXAMPLE_DB", "sqlite")
    name = os.environ.get("ACHANNELS_EXAMPLE_DB_NAME")
    if kind == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or BASE_DIR / "db.sqlite3"}
    if kind == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name or "test",
            "HOST": os.environ.get("ACHANNELS_EXAMPLE_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ACHANNELS_EXAMPLE_PG_PORT", "5432"),
            "USER": os.environ.get("ACHANNELS_EXAMPLE_PG_USER", "postgres"),
        }
    raise ValueError(f"ACHANNELS_EXAMPLE_DB must be 'sqlite' or 'postgres', not {kind!r}")


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
