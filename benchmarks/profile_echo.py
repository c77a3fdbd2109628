"""Profile one echo server under load with py-spy: where each message's CPU goes.

    python benchmarks/profile_echo.py uvicorn achannels --duration 5

Starts ``benchmarks/serve.py`` (pinned to CPU 0), drives it with the ping-pong client
(CPU 1), samples the server with ``py-spy record`` while measuring its CPU time and
the messages echoed, then attributes every sample to an owner: the deepest frame on
the stack that belongs to the app under test (``achannels/`` or ``channels/``) or to
the server (hypercorn, uvicorn, websockets, wsproto, h11); samples with neither are
the event loop's. AnyIO frames count for whoever called them. Prints µs of server
CPU per message for each owner, then the top app functions, self and inclusive.

Needs ``py-spy`` (``pip install py-spy``) and permission to ptrace the server.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.echo import _cpu_seconds, _pin, running_server  # noqa: E402

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")
APP_PACKAGES = ("achannels/", "channels/", "benchmarks/apps.py")
SERVER_PACKAGES = ("hypercorn/", "uvicorn/", "websockets/", "wsproto/", "h11/")


def _owner(filename: str) -> str | None:
    if filename.startswith(APP_PACKAGES):
        return "app"
    if filename.startswith(SERVER_PACKAGES):
        return filename.split("/", 1)[0]
    return None


def summarize(raw_file: Path, us_per_sample: float, top: int) -> str:
    """Return the per-owner and per-function µs/message report of a py-spy raw file."""
    owners: collections.Counter[str] = collections.Counter()
    app_self: collections.Counter[str] = collections.Counter()
    app_incl: collections.Counter[str] = collections.Counter()
    app_leaves: collections.Counter[str] = collections.Counter()
    for line in raw_file.read_text().splitlines():
        if line.startswith("#"):
            continue
        stack_text, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = []
        for frame in stack_text.split(";"):
            match = FRAME.match(frame)
            frames.append((match["func"], match["file"]) if match else (frame, ""))
        owner, owner_frame = "event loop", None
        for func, filename in reversed(frames):
            found = _owner(filename)
            if found is not None:
                owner, owner_frame = found, f"{func} ({filename})"
                break
        owners[owner] += count
        if owner == "app" and owner_frame is not None:
            app_self[owner_frame] += count
            func, filename = frames[-1]
            app_leaves[f"{owner_frame} → {func} ({filename})"] += count
        for name in {f"{f} ({fn})" for f, fn in frames if _owner(fn) == "app"}:
            app_incl[name] += count
    lines = ["| owner | µs/msg | share |", "|---|---:|---:|"]
    total = sum(owners.values())
    for owner, count in owners.most_common():
        lines.append(f"| {owner} | {count * us_per_sample:.1f} | {count / total:.0%} |")
    lines += ["", "| app function | self µs/msg | incl. µs/msg |", "|---|---:|---:|"]
    for name, count in app_incl.most_common(top):
        lines.append(
            f"| {name} | {app_self[name] * us_per_sample:.1f} | {count * us_per_sample:.1f} |"
        )
    lines += ["", "| app function → where its own time goes | µs/msg |", "|---|---:|"]
    for name, count in app_leaves.most_common(top):
        lines.append(f"| {name} | {count * us_per_sample:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=("hypercorn-trio", "hypercorn-asyncio", "uvicorn"))
    parser.add_argument("app", choices=("raw", "achannels", "channels"))
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--save", metavar="FILE", help="keep py-spy's raw samples here")
    args = parser.parse_args(argv)
    py_spy = Path(sys.executable).with_name("py-spy")
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(args.server, args.app, pin=args.pin) as (port, pid),
    ):
        client = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "wsload.py"),
                f"--port={port}",
                f"--connections={args.connections}",
                f"--duration={args.duration + 1}",
                f"--warmup={args.warmup}",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            _pin(client.pid, 1, args.pin)
            time.sleep(args.warmup + 0.3)
            raw_file = Path(tmp) / "samples.txt"
            cpu_before = _cpu_seconds(pid)
            subprocess.run(
                [
                    str(py_spy),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(int(args.duration)),
                    "--format",
                    "raw",
                    "--output",
                    str(raw_file),
                ],
                check=True,
                capture_output=True,
                timeout=args.duration + 30,
            )
            cpu_after = _cpu_seconds(pid)
            out, _ = client.communicate(timeout=args.duration + 60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        result = json.loads(out)
        if cpu_before is None or cpu_after is None:
            raise SystemExit("needs /proc to read the server's CPU time")
        samples = sum(int(line.rpartition(" ")[2]) for line in raw_file.read_text().splitlines())
        messages = result["msgs_per_s"] * int(args.duration)
        cpu_us_per_msg = (cpu_after - cpu_before) * 1e6 / messages
        print(
            f"{args.server} / {args.app}: {result['msgs_per_s']:,.0f} msgs/s (sampled), "
            f"server CPU {cpu_us_per_msg:.1f} µs/msg, {samples} samples\n"
        )
        print(summarize(raw_file, cpu_us_per_msg / samples, args.top))
        if args.save:
            Path(args.save).write_text(
                f"# us_per_sample {cpu_us_per_msg / samples}\n" + raw_file.read_text()
            )


if __name__ == "__main__":
    main()
