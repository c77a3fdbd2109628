"""The chat demo across processes on one Redis: two servers, ``hypercorn -w 2``, a worker.

Every process here runs ``examples.chat.app:app`` with ``ACHANNELS_REDIS_URL`` set, so
the demo uses the Redis layer, under a key prefix of the test's own
(``ACHANNELS_REDIS_PREFIX``); the prefix's keys are deleted after the test. Each test
starts its own processes and stops them (bounded) when it ends.

Redis is the server at ``ACHANNELS_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379``); without it these tests fail, never skip.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession

from examples.chat.app import ANNOUNCE_EVERY, LOG_CHANNEL, room_group

from .clients import WAIT, open_client, open_ws
from .servers import HYPERCORN, READY_WITHIN, REPO, Server, start_server, use_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

REDIS_URL = os.environ.get("ACHANNELS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CHAT_APP = "examples.chat.app:app"
#: How long one ``redis-cli`` call may take.
CLI_TIMEOUT = 10.0
#: Connections in the ``hypercorn -w 2`` room, half in each worker process.
MEMBERS = 8
#: Connections tried at most to get those halves (the kernel picks the process).
MAX_ATTEMPTS = 100


class StartServer(Protocol):
    """The ``start`` fixture: serve the demo under server ``kind`` with extra options."""

    def __call__(self, kind: str, *options: str) -> Server: ...


def redis_cli(*args: str) -> str:
    """Run ``redis-cli -u REDIS_URL ARGS...``; return its output, or fail the test."""
    argv = ["redis-cli", "-u", REDIS_URL, *args]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"these tests need Redis at {REDIS_URL}: $ {' '.join(argv)}: {exc!r}")
    if done.returncode != 0 or done.stdout.startswith(("ERR", "Could not connect")):
        pytest.fail(f"these tests need Redis at {REDIS_URL}: {done.stdout}{done.stderr}")
    return done.stdout


@pytest.fixture
def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the chat demo started by this test at Redis, under a fresh key prefix.

    Fails the test when Redis does not answer. The prefix's keys are deleted afterwards.
    """
    if redis_cli("PING").strip() != "PONG":
        pytest.fail(f"Redis at {REDIS_URL} did not answer PING")
    prefix = f"achannels-test-{secrets.token_hex(6)}:"
    monkeypatch.setenv("ACHANNELS_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("ACHANNELS_REDIS_PREFIX", prefix)
    yield prefix
    keys = redis_cli("--scan", "--pattern", f"{prefix}*").split()
    if keys:
        redis_cli("DEL", *keys)


@pytest.fixture
def start(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[StartServer]:
    """Return ``start(kind, *options)``: serve the demo on Redis; stopped after the test."""
    started: list[Server] = []

    def serve(kind: str, *options: str) -> Server:
        server = start_server(kind, CHAT_APP, output_dir=tmp_path, options=options)
        started.append(use_server(request, server))
        return server

    yield serve
    for server in started:
        server.terminate()
    for server in started:
        server.stop()


def start_worker(request: pytest.FixtureRequest, tmp_path: Path, worker_class: str) -> Server:
    """Start ``python -m achannels worker`` for the demo (it listens on no port: 0)."""
    argv = [sys.executable, "-m", "achannels", "worker", CHAT_APP, "-k", worker_class]
    output = tmp_path / f"achannels-worker-{worker_class}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with output.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
    return use_server(request, Server(f"achannels-worker-{worker_class}", 0, process, output, argv))


async def wait_until(condition: Callable[[], bool], what: str, *, within: float = WAIT) -> None:
    """Poll ``condition`` until it holds, at most ``within`` seconds.

    Raises:
        TimeoutError: it never held; the message says ``what`` was awaited.
    """
    try:
        with anyio.fail_after(within):
            while not condition():  # noqa: ASYNC110 - the state is in another process
                await anyio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"waited {within} s for {what}") from None


async def wait_for_output(server: Server, text: str, count: int) -> None:
    """Wait (bounded) until ``text`` appears ``count`` times in the server's output."""

    def logged() -> bool:
        server.check_running()
        return server.read_output().count(text) >= count

    await wait_until(logged, f"{count} x {text!r} from {server.name}", within=READY_WITHIN)


def new_room() -> str:
    """Return a room name no other test uses."""
    return f"room-{secrets.token_hex(4)}"


@asynccontextmanager
async def member(client: httpx.AsyncClient, room: str) -> AsyncIterator[AsyncWebSocketSession]:
    """Join ``room`` through ``client``'s server.

    The consumer joins the room's group before it accepts, so once the handshake is
    done the membership is in Redis and every later message of the room reaches it.
    """
    async with open_ws(client, f"/ws/chat/{room}/") as ws:
        yield ws


async def receive_json(ws: AsyncWebSocketSession, *, within: float = WAIT) -> Any:
    """Return the next JSON frame, waiting at most ``within`` seconds."""
    with anyio.fail_after(within):
        return await ws.receive_json()


def group_members(prefix: str, room: str) -> set[str]:
    """Return the channels in ``room``'s group, as Redis holds them."""
    return set(redis_cli("ZRANGE", f"{prefix}:group:{room_group(room)}", "0", "-1").split())


def queued(prefix: str, channel: str) -> int:
    """Return how many messages Redis holds for the normal channel ``channel``."""
    return int(redis_cli("ZCARD", f"{prefix}{channel}"))


def process_of(channel: str) -> str:
    """Return the layer process (client prefix) of ``"specific.<process>!<id>"``."""
    return channel.partition(".")[2].partition("!")[0]


async def test_a_message_reaches_members_on_both_servers(
    start: StartServer, redis_prefix: str
) -> None:
    # One server per worker class: each sends through Redis, each receives from it.
    one, other = start("hypercorn-trio"), start("hypercorn-asyncio")
    room = new_room()
    async with AsyncExitStack() as stack:
        client_one = await stack.enter_async_context(open_client(one))
        client_other = await stack.enter_async_context(open_client(other))
        alice = await stack.enter_async_context(member(client_one, room))
        ann = await stack.enter_async_context(member(client_one, room))
        bob = await stack.enter_async_context(member(client_other, room))
        assert len({process_of(name) for name in group_members(redis_prefix, room)}) == 2

        await alice.send_json({"message": "from one"})
        for ws in (alice, ann, bob):
            assert await receive_json(ws) == {"message": "from one"}
        await bob.send_json({"message": "from the other"})
        for ws in (alice, ann, bob):
            assert await receive_json(ws) == {"message": "from the other"}


@pytest.mark.parametrize("kind", HYPERCORN)
async def test_every_member_hears_every_message_across_two_workers(
    start: StartServer, redis_prefix: str, kind: str
) -> None:
    server = start(kind, "--workers", "2")
    # Each worker process logs this once its lifespan startup is done and it serves.
    await wait_for_output(server, "Running on", 2)
    room = new_room()
    async with open_client(server) as client, AsyncExitStack() as stack:
        members = await join_evenly(stack, client, redis_prefix, room)
        sent = {f"#{n}" for n in range(MEMBERS)}
        for ws, text in zip(members, sorted(sent), strict=True):
            await ws.send_json({"message": text})
        for ws in members:
            heard = {(await receive_json(ws))["message"] for _ in range(MEMBERS)}
            assert heard == sent  # 8 of 8


async def join_evenly(
    stack: AsyncExitStack, client: httpx.AsyncClient, prefix: str, room: str
) -> list[AsyncWebSocketSession]:
    """Join ``room`` with ``MEMBERS`` connections, half in each worker process.

    The kernel hands each connection to whichever worker process accepts first, so a
    connection that lands in a process with its half already is closed and tried
    again (bounded); the group's member names in Redis say which process has it.
    """
    members: list[AsyncWebSocketSession] = []
    per_process: Counter[str] = Counter()
    seen: set[str] = set()
    # Each attempt is bounded by the client's timeouts; a cancel scope around the loop
    # would close before the connections it opened.
    for _ in range(MAX_ATTEMPTS):
        attempt = AsyncExitStack()
        ws = await attempt.enter_async_context(member(client, room))
        (channel,) = group_members(prefix, room) - seen
        seen.add(channel)
        process = process_of(channel)
        if per_process[process] < MEMBERS // 2:
            per_process[process] += 1
            members.append(ws)
            stack.push_async_callback(attempt.aclose)
            if len(members) == MEMBERS:
                return members
        else:
            await attempt.aclose()
    raise AssertionError(f"{MAX_ATTEMPTS} connections did not reach both halves: {per_process}")


@pytest.mark.parametrize(
    ("kind", "worker_class"),
    [
        pytest.param("hypercorn-trio", "asyncio", id="hypercorn-trio+worker-asyncio"),
        pytest.param("hypercorn-asyncio", "trio", id="hypercorn-asyncio+worker-trio"),
    ],
)
async def test_a_worker_process_counts_the_messages_of_a_room(
    start: StartServer,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kind: str,
    worker_class: str,
) -> None:
    monkeypatch.setenv("ACHANNELS_RUN_WORKERS", "0")  # the worker process serves chat-log
    web = start(kind)
    room = new_room()
    sent = [{"message": f"#{n}"} for n in range(ANNOUNCE_EVERY)]
    async with (
        open_client(web) as client,
        member(client, room) as alice,
        member(client, room) as bob,
    ):
        for message in sent:
            await alice.send_json(message)
        for ws in (alice, bob):
            assert [await receive_json(ws) for _ in sent] == sent
        # Nobody serves chat-log yet: the layer keeps its messages in Redis.
        await wait_until(
            lambda: queued(redis_prefix, LOG_CHANNEL) == ANNOUNCE_EVERY,
            f"{ANNOUNCE_EVERY} messages queued on {LOG_CHANNEL}",
        )

        worker = start_worker(request, tmp_path, worker_class)
        try:
            announcement = {"message": f"[{LOG_CHANNEL}] {ANNOUNCE_EVERY} messages in this room"}
            for ws in (alice, bob):
                assert await receive_json(ws, within=READY_WITHIN) == announcement
            assert queued(redis_prefix, LOG_CHANNEL) == 0
            response = await client.get("/stats")
            assert response.json()["runtime"]["worker_messages"] == 0  # not the web process
        finally:
            status = worker.stop()
    assert status == 0, worker.describe()  # a clean exit on SIGTERM
