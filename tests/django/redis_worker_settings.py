"""Settings for a ``runworker`` subprocess fed through Redis, as a Channels project has them.

The ``BACKEND`` is channels_redis's path, unchanged from a Channels project; it names
achannels' Redis layer. ``ACHANNELS_TEST_REDIS_PREFIX`` keeps each test's keys apart.
"""

from __future__ import annotations

import os

from examples.django_project.settings import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("ACHANNELS_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")],
            "prefix": os.environ["ACHANNELS_TEST_REDIS_PREFIX"],
        },
    },
}
