"""``python -m achannels worker``: a real process, stopped by a real signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_worker_command_serves_survives_errors_and_stops_on_sigterm(
    tmp_path: Path, backend: str
) -> None:
    output = tmp_path / "out.txt"
    env = {**os.environ, "ACHANNELS_WORKER_OUTPUT": str(output)}
    command = [sys.executable, "-m", "achannels", "worker", "tests.apps.worker_app:app", "jobs"]
    process = subprocess.Popen(
        [*command, "-k", backend], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while not output.exists() or output.read_text().split() != ["0", "1", "2", "3"]:
            assert time.monotonic() < deadline, "the worker did not handle the jobs"
            assert process.poll() is None, "the worker exited early"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert output.read_text().split() == ["0", "1", "2", "3", "shutdown"]
    assert "invalid literal for int() with base 10: 'bad'" in stderr
