"""Garbage-collector thresholds for a process that holds many long-lived connections.

Each layer message delivered to a connection wakes that connection's reader task, which
then parks again on freshly allocated objects (an AnyIO ``Event`` and its wait: 9 to 13
GC-tracked objects on asyncio, 13 to 18 on trio). They live until the connection's next
message, about a second in a chat, so under Python's default thresholds (700, 10, 10)
the young collections, run every few hundred allocations, promote them to the oldest
generation; a full collection follows whenever those promotions reach a quarter of it.
With 10,000 connections a full collection scans over a million objects, and it ran
every second or two: on hypercorn's trio worker half the server's CPU went to it and
the delivery p99 rose to hundreds of milliseconds.

The young generation's threshold counts allocations *net of* deallocations. A server in
a steady state allocates and frees about as much as it keeps, so with a threshold of
50,000 young collections run only while the process grows (connections opening) and
almost never in the steady state: parked objects are freed by reference counting, as
they always are, before any collection sees them. Cyclic garbage is still collected,
later. Measured with ``benchmarks/suite.py tenk`` (2,000 connections, hypercorn-trio):
delivery p99 333 ms -> 10.5 ms (raw app: 10.1), server CPU per delivery 2.5x -> 1.5x raw
(one quick round each, side by side).
"""

from __future__ import annotations

import gc
import logging
import os

__all__ = ["PYTHON_DEFAULT_THRESHOLDS", "TUNED_THRESHOLDS", "tune_gc"]

logger = logging.getLogger("achannels")

#: What CPython starts with.
PYTHON_DEFAULT_THRESHOLDS = (700, 10, 10)
#: What :func:`tune_gc` sets.
TUNED_THRESHOLDS = (50_000, 20, 100)
#: Set to ``"off"`` to keep the interpreter's thresholds, or to ``"a,b,c"`` to choose.
ENVIRONMENT_VARIABLE = "ACHANNELS_GC_THRESHOLD"


def tune_gc() -> tuple[int, ...]:
    """Raise the garbage collector's thresholds for a long-running server; return them.

    Lifespan startup of a ``Router`` or a ``ProtocolTypeRouter`` calls it; call it in
    your ASGI module when serving achannels consumers without lifespan. It changes only
    thresholds still at CPython's defaults, so a process that chose its own keeps them.
    The environment variable ``ACHANNELS_GC_THRESHOLD`` overrides it: ``off`` leaves the
    thresholds alone, ``"50000,20,100"`` (three integers) sets those.

    Raises:
        ValueError: ``ACHANNELS_GC_THRESHOLD`` is neither ``off`` nor three integers.
    """
    current = gc.get_threshold()
    setting = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if setting:
        wanted = _parse(setting)
    elif current == PYTHON_DEFAULT_THRESHOLDS:
        wanted = TUNED_THRESHOLDS
    else:
        wanted = None  # the process chose its own
    if wanted is None or wanted == current:
        return current
    gc.set_threshold(*wanted)
    logger.debug("garbage collector thresholds %s -> %s", current, wanted)
    return wanted


def _parse(setting: str) -> tuple[int, int, int] | None:
    if setting.lower() == "off":
        return None
    try:
        first, second, third = (int(part) for part in setting.split(","))
    except ValueError:
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE} must be 'off' or three integers like '50000,20,100',"
            f" not {setting!r}"
        ) from None
    return first, second, third
