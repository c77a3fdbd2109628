"""The example project's settings for ``manage.py runserver`` subprocesses.

``ACHANNELS_TEST_WATCHED_MODULE``, when set, names a module (found through
``PYTHONPATH``) imported here, so that the autoreloader watches it: a test touches
its file to make the server reload. Everything else is the example project's,
``INSTALLED_APPS`` included (``"achannels"`` before ``"django.contrib.staticfiles"``,
so that ``runserver`` is achannels').
"""

from __future__ import annotations

import importlib
import os

from examples.django_project.settings import *  # noqa: F403

if watched := os.environ.get("ACHANNELS_TEST_WATCHED_MODULE"):
    importlib.import_module(watched)
