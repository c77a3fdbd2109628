"""The example project's settings, with both test databases, for the in-process tests.

``default`` is SQLite (a file, so that server subprocesses can share it) and
``postgres`` is PostgreSQL on 127.0.0.1:5432; :class:`SelectedDatabase` sends every
query to the one the running test selected. The project's own code is unchanged:
it uses the default manager, as a real project does.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from examples.django_project.settings import *  # noqa: F403
from examples.django_project.settings import INSTALLED_APPS

#: The SQLite test database file (shared with the server and worker subprocesses).
SQLITE_TEST_FILE = Path(tempfile.gettempdir()) / f"achannels-django-tests-{os.getpid()}.sqlite3"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(SQLITE_TEST_FILE),
        "TEST": {"NAME": str(SQLITE_TEST_FILE)},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "HOST": os.environ.get("ACHANNELS_EXAMPLE_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ACHANNELS_EXAMPLE_PG_PORT", "5432"),
        "USER": os.environ.get("ACHANNELS_EXAMPLE_PG_USER", "postgres"),
        "TEST": {"NAME": f"test_achannels_{os.getpid()}"},
    },
}
DATABASE_ROUTERS = ["tests.django.dbrouting.SelectedDatabase"]
INSTALLED_APPS = [*INSTALLED_APPS, "achannels.django"]
