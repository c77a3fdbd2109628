"""A WebSocket ping-pong load client: raw sockets and ``selectors``, one thread.

    python benchmarks/wsload.py --port 8001 --connections 16 --duration 5 --warmup 1

Each of N connections sends one small masked text frame, waits for the server to
echo it back, and sends the next: request/response ping-pong, so the server is the
bottleneck, not the client. Frames are encoded once; the reply is checked byte for
byte against the expected unmasked frame. Connects only to 127.0.0.1. Prints one
JSON object: messages and msgs_per_s in the measured window, p50_us, p99_us, and
total_messages and client_cpu_s over the whole run (warm-up included).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import socket
import statistics
import time

HOST = "127.0.0.1"


def _text_frame(payload: bytes, *, masked: bool) -> bytes:
    if len(payload) > 125:
        raise ValueError("payloads over 125 bytes are not supported by this client")
    if not masked:
        return bytes([0x81, len(payload)]) + payload
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


def _close_frame() -> bytes:
    mask = os.urandom(4)
    code = (1000).to_bytes(2, "big")
    return bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate(code))


def _connect(port: int, path: str, timeout: float) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"server closed during the handshake: {response!r}")
        response += chunk
    head, _, rest = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head.decode(errors='replace')}")
    if rest:
        raise ConnectionError(f"unexpected bytes after the handshake: {rest!r}")
    sock.setblocking(False)
    return sock


def run_load(
    port: int,
    *,
    path: str = "/echo",
    connections: int = 16,
    duration: float = 5.0,
    warmup: float = 1.0,
    size: int = 16,
) -> dict[str, float]:
    """Run the ping-pong load; return throughput and latency over the measured window."""
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    expected = _text_frame(payload, masked=False)
    frame_len = len(expected)
    socks = [_connect(port, path, timeout=10.0) for _ in range(connections)]
    frames = [_text_frame(payload, masked=True) for _ in socks]
    selector = selectors.DefaultSelector()
    buffers = [b""] * connections
    sent_at = [0] * connections
    in_flight = [False] * connections
    latencies: list[int] = []
    for index, sock in enumerate(socks):
        selector.register(sock, selectors.EVENT_READ, index)
    clock = time.perf_counter_ns
    start = clock()
    measure_from = start + int(warmup * 1e9)
    stop_at = measure_from + int(duration * 1e9)
    for index, sock in enumerate(socks):
        sent_at[index] = clock()
        in_flight[index] = True
        sock.sendall(frames[index])
    messages = 0
    total = 0
    cpu_start = time.process_time()
    try:
        while any(in_flight):
            now = clock()
            if now > stop_at + 5_000_000_000:
                raise TimeoutError("the server stopped answering")
            for key, _ in selector.select(timeout=1.0):
                index = key.data
                sock = socks[index]
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed a connection mid-run")
                buffer = buffers[index] + data
                if len(buffer) < frame_len:
                    buffers[index] = buffer
                    continue
                if buffer != expected:
                    raise ValueError(f"bad echo: {buffer!r}, expected {expected!r}")
                buffers[index] = b""
                total += 1
                now = clock()
                if measure_from <= sent_at[index] and now <= stop_at:
                    messages += 1
                    latencies.append(now - sent_at[index])
                if now < stop_at:
                    sent_at[index] = now
                    sock.send(frames[index])
                else:
                    in_flight[index] = False
    finally:
        for sock in socks:
            try:
                sock.setblocking(True)
                sock.settimeout(0.5)
                sock.sendall(_close_frame())
            except OSError:
                pass
            sock.close()
        selector.close()
    client_cpu = time.process_time() - cpu_start
    latencies.sort()
    return {
        "messages": messages,
        "total_messages": total,
        "client_cpu_s": client_cpu,
        "seconds": duration,
        "msgs_per_s": messages / duration,
        "p50_us": statistics.median(latencies) / 1000 if latencies else float("nan"),
        "p99_us": latencies[int(len(latencies) * 0.99)] / 1000 if latencies else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/echo")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=16, help="payload bytes (at most 125)")
    args = parser.parse_args(argv)
    result = run_load(
        args.port,
        path=args.path,
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        size=args.size,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
