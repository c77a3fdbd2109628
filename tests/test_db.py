"""``aclose_old_connections()`` skips its thread hop where Django has no database."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("django")

_PROBE = """
import django
from django.conf import settings
settings.configure({databases})
django.setup()
from achannels import db
print(db._has_database())
"""


@pytest.mark.parametrize(
    ("databases", "expected"),
    [
        ("", "False"),  # no DATABASES: Django's dummy backend only
        (
            "DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}",
            "True",
        ),
    ],
    ids=["no-database", "sqlite"],
)
def test_the_disconnect_hop_is_skipped_only_without_a_database(
    databases: str, expected: str
) -> None:
    code = _PROBE.format(databases=databases)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == expected
