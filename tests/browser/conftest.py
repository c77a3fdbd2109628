"""Fixtures for the browser tests: a demo served as users serve it, and Chromium.

The browser is Debian's Chromium (``apt-get install chromium``) driven by
Playwright's sync API; ``playwright install`` is never needed. Without Chromium the
tests skip, except in CI (``CI`` set), where they fail.

When a test fails, its report gets the server's output and a screenshot of every
page it opened (saved in the test's ``tmp_path``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: How long the server may take to listen (cold imports on a busy 2-core box).
READY_WITHIN = 20.0
#: How long the server may take to exit after SIGTERM before it is killed.
STOP_WITHIN = 10.0
#: Playwright's limit for each wait and action, in milliseconds.
ACTION_TIMEOUT_MS = 10_000


@dataclass
class Served:
    """An app served by ``python -m achannels serve`` in a subprocess."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str]

    def describe(self) -> str:
        """Return the command, its state and its output, for a failure report."""
        status = self.process.poll()
        state = "still running" if status is None else f"exited with {status}"
        output = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"$ {' '.join(self.argv)}\n({state})\n{output}"


@dataclass
class Failure:
    """What a failed test leaves in its report (filled in by the fixtures)."""

    sections: list[tuple[str, Callable[[], str]]] = field(default_factory=list)


FAILURE = pytest.StashKey[Failure]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, add what the fixtures registered to the report.

    For a failed call this runs before fixture teardown, so the pages are still open.
    """
    report = yield
    if report.failed and report.when in ("call", "teardown"):
        for title, describe in item.stash.get(FAILURE, Failure()).sections:
            report.sections.append((title, describe()))
    return report


def on_failure(request: pytest.FixtureRequest, title: str, describe: Callable[[], str]) -> None:
    """Add ``describe()`` to the test's report, under ``title``, if it fails."""
    request.node.stash.setdefault(FAILURE, Failure()).sections.append((title, describe))


def free_port() -> int:
    """Return a port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(served: Served, port: int, within: float) -> None:
    """Return once ``port`` accepts connections; raise if the server died or was slow."""
    deadline = time.monotonic() + within
    while True:
        if served.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{served.describe()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not listen within {within} s:\n{served.describe()}"
                ) from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> int:
    """Terminate ``process``, wait (bounded), then kill; return its exit status."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(STOP_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(STOP_WITHIN)


@contextmanager
def serve(app: str, log: Path, *, worker: str = "trio") -> Iterator[Served]:
    """Serve ``app`` exactly as the README says, on a free port; stop it afterwards."""
    port = free_port()
    argv = [sys.executable, "-m", "achannels", "serve", app, "-k", worker, "-b", f"{HOST}:{port}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
    served = Served(f"http://{HOST}:{port}", process, log, argv)
    try:
        wait_listening(served, port, READY_WITHIN)
        yield served
    finally:
        stop(process)


@pytest.fixture
def chat_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The chat demo, served with the trio worker."""
    with serve("examples.chat.app:app", tmp_path / "server.log") as served:
        on_failure(request, "chat server output", served.describe)
        yield served


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; skips without it (fails when ``CI`` is set).

    Function-scoped on purpose: the sync API keeps an asyncio loop of its own, which
    must be gone before the next ``anyio`` test starts one.
    """
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, browser: Browser, tmp_path: Path
) -> Iterator[Callable[[], Page]]:
    """Open pages, each in a browsing context of its own (like separate users).

    On failure the report lists a screenshot of every page (in ``tmp_path``) and what
    the page logged to its console.
    """
    contexts = []
    pages: list[tuple[Page, list[str]]] = []

    def new_page() -> Page:
        context = browser.new_context()
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        pages.append((page, console))
        return page

    def screenshots() -> str:
        lines = []
        for n, (page, console) in enumerate(pages):
            path = tmp_path / f"page-{n}.png"
            try:
                page.screenshot(path=path, full_page=True)
                lines.append(f"page {n} ({page.url}): {path}")
            except Exception as exc:  # the page or browser may be gone
                lines.append(f"page {n} ({page.url}): no screenshot ({exc})")
            lines.extend(f"    {entry}" for entry in console)
        return "\n".join(lines)

    on_failure(request, "browser pages", screenshots)
    try:
        yield new_page
    finally:
        for context in contexts:
            context.close()
