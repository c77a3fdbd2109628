"""Shared fixtures: every async test runs on asyncio and on trio.

Where Django is installed, every test module shares one settings module,
``tests.django.settings`` (the example project's, with the test databases), set up
before any test module is imported; the session without Django skips this.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from tests.e2e.servers import SERVERS_USED

try:
    import django
except ImportError:  # the session that proves achannels works without Django
    django = None

if django is not None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    django.setup()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the output of the servers a failed test used to its report."""
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS_USED, []):
            report.sections.append((f"server {server.name} output", server.describe()))
    return report


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test once per backend (trio must be installed)."""
    backend: str = request.param
    return backend
