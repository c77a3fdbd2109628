"""A worker app for the worker-command test: it feeds itself from its startup hook."""

from __future__ import annotations

import os
from typing import Any

import anyio

from achannels import Router
from achannels.layers import InMemoryChannelLayer

layer = InMemoryChannelLayer()
app = Router(layer=layer)
OUTPUT = os.environ.get("ACHANNELS_WORKER_OUTPUT", "worker-output.txt")


@app.on_startup
async def feed() -> None:
    for n in range(3):
        await layer.send("jobs", {"type": "job", "n": n})
    await layer.send("jobs", {"type": "job", "n": "bad"})
    await layer.send("jobs", {"type": "job", "n": 3})


@app.on_shutdown
async def bye() -> None:
    await anyio.Path(OUTPUT).write_text(await _read() + "shutdown\n")


@app.channel("jobs")
async def job(message: dict[str, Any]) -> None:
    number = int(message["n"])  # "bad" raises: logged, and the worker goes on
    await anyio.Path(OUTPUT).write_text(await _read() + f"{number}\n")


async def _read() -> str:
    path = anyio.Path(OUTPUT)
    return await path.read_text() if await path.exists() else ""
