"""The public surface: what ``import achannels`` offers, with or without Django."""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType

import pytest

import achannels


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name in dir(achannels)
        # "@py_builtins"...: pytest rewrites the asserts of packages that ship a plugin.
        if not name.startswith(("_", "@")) and not isinstance(getattr(achannels, name), ModuleType)
    }
    assert sorted(achannels.__all__) == achannels.__all__
    assert set(achannels.__all__) == public - {"annotations"}


def test_import_does_not_pull_in_django_or_a_backend() -> None:
    code = (
        "import sys, achannels, achannels.routing, achannels.testing; "
        "print(sorted(m for m in ('django', 'trio', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "django" not in out
    assert "trio" not in out


def test_default_channel_layer_is_exported_as_channels_exports_it() -> None:
    from achannels.layers import DEFAULT_CHANNEL_LAYER

    assert achannels.DEFAULT_CHANNEL_LAYER == DEFAULT_CHANNEL_LAYER == "default"
    code = (
        "import sys; from achannels import DEFAULT_CHANNEL_LAYER; "
        "print(DEFAULT_CHANNEL_LAYER, [m for m in ('django', 'coredis') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["default", "[]"]


@pytest.mark.skipif(
    os.environ.get("ACHANNELS_NO_DJANGO") != "1", reason="only in the session without Django"
)
def test_django_is_absent_when_the_session_says_so() -> None:
    result = subprocess.run([sys.executable, "-c", "import django"], capture_output=True)
    assert result.returncode != 0
