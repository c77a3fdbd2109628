"""What the memory-layer tests share: a clock moved by hand and a numbered message."""

from __future__ import annotations

from typing import Any


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def msg(n: int = 0) -> dict[str, Any]:
    return {"type": "test.message", "n": n}
