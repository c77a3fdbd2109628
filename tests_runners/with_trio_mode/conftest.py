"""After each test, no consumer of the scenarios is left connected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests_runners import scenarios


@pytest.fixture(autouse=True)
def nothing_left() -> Iterator[None]:
    """Check, once the test and its communicator host have ended, that nothing runs."""
    scenarios.reset()
    yield
    scenarios.assert_nothing_left()
