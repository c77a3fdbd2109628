"""Settings for a ``runworker`` subprocess: the project's, with a self-feeding layer.

``ACHANNELS_TEST_PRELOAD`` holds JSON ``{channel: [message, ...]}``; see
``tests.django.preloaded_layer``. The database comes from the project's own
``ACHANNELS_EXAMPLE_DB`` / ``ACHANNELS_EXAMPLE_DB_NAME`` variables.
"""

from __future__ import annotations

import json
import os

from examples.django_project.settings import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "tests.django.preloaded_layer.PreloadedChannelLayer",
        "CONFIG": {"preload": json.loads(os.environ.get("ACHANNELS_TEST_PRELOAD", "{}"))},
    },
}
