"""Micro-benchmark of the WebSocket layer: unmasking, and frames in and out of a session.

    python -m benchmarks.websocket [--rounds 5] [--megabytes 64]

No sockets: masked client frames of 16 B and 64 KiB are fed to a
:class:`~pigeon.transport.websocket.WebSocketSession` past its upgrade in 64-KiB
reads (what the glue's reads give), around a protocol that drops what it gets;
then its output is framed as the glue's flush asks for it. ``unmask`` is also
timed alone, beside a loop per byte for scale. Reported: MB/s of payload, best and
median of ``--rounds`` rounds, in this process's CPU time (docs/mqtt.md, "WebSocket").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

if not __package__:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pigeon.transport.session import Keepalive, Peer, Phase, Waiter
from pigeon.transport.websocket import WebSocketSession, WebSocketSettings
from pigeon.transport.websocket_frames import Opcode, frame_header, unmask

MASK = b"\x37\xfa\x21\x3d"
READ = 64 * 1024
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


class Sink:
    """A protocol that takes every byte and answers with ``reply`` bytes per turn."""

    def __init__(self, peer: Peer, want_flush: Callable[[], None]) -> None:
        self.size = 0
        self.reply = b""

    phase = Phase.OPEN
    blocked = False

    def receive_data(self, data: bytes) -> None:
        self.size += len(data)

    def process(self, budget: int) -> bool:
        return False

    def throttle(self) -> Waiter | None:
        return None

    def data_to_send(self) -> bytes:
        return self.reply

    def output_flushed(self) -> None: ...
    def pause_output(self) -> None: ...
    def resume_output(self) -> None: ...
    def keepalive(self) -> Keepalive | None:
        return None

    def send_heartbeat(self) -> None: ...
    def internal_error(self) -> None: ...
    def shutdown(self) -> None: ...
    def connection_lost(self) -> None: ...


def masked_frame(payload: bytes) -> bytes:
    header = bytearray(frame_header(Opcode.BINARY, len(payload)))
    header[1] |= 0x80
    return bytes(header) + MASK + unmask(payload, MASK)


def session() -> WebSocketSession[Sink]:
    ws = WebSocketSession(Peer("127.0.0.1:1", True), lambda: None, Sink, WebSocketSettings())
    ws.receive_data(UPGRADE)
    ws.process(128)
    ws.data_to_send()
    return ws


def timed(run: Callable[[], int], rounds: int) -> tuple[float, float]:
    """(best, median) MB/s of ``run``, which returns the payload bytes it handled."""
    rates = []
    for _ in range(rounds):
        start = time.process_time()
        size = run()
        rates.append(size / (time.process_time() - start) / 1e6)
    return max(rates), statistics.median(rates)


def inbound(frame_size: int, total: int) -> Callable[[], int]:
    stream = masked_frame(os.urandom(frame_size)) * max(1, total // frame_size)
    reads = [stream[i : i + READ] for i in range(0, len(stream), READ)]

    def run() -> int:
        ws = session()
        for data in reads:
            ws.receive_data(data)
            ws.process(128)
        inner = ws.inner
        assert inner is not None
        return inner.size

    return run


def outbound(frame_size: int, total: int) -> Callable[[], int]:
    payload = os.urandom(frame_size)
    count = max(1, total // frame_size)

    def run() -> int:
        ws = session()
        inner = ws.inner
        assert inner is not None
        inner.reply = payload
        for _ in range(count):
            ws.data_to_send()
        return count * frame_size

    return run


def unmasking(frame_size: int, total: int) -> Callable[[], int]:
    payload = os.urandom(frame_size)
    count = max(1, total // frame_size)

    def run() -> int:
        for _ in range(count):
            unmask(payload, MASK)
        return count * frame_size

    return run


def per_byte(frame_size: int, total: int) -> Callable[[], int]:
    payload = os.urandom(frame_size)
    count = max(1, min(total, 2_000_000) // frame_size)  # it is slow: less of it

    def run() -> int:
        for _ in range(count):
            bytes(b ^ MASK[i & 3] for i, b in enumerate(payload))
        return count * frame_size

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=64)
    args = parser.parse_args(argv)
    total = args.megabytes * 1_000_000
    cases = [("unmask()", unmasking), ("frames in", inbound), ("frames out", outbound)]
    cases.append(("loop per byte", per_byte))
    print(f"{'':14} {'frame':>7} {'best MB/s':>10} {'median':>8}")
    for name, make in cases:
        for size in (16, 64 * 1024):
            small = size == 16 and name != "loop per byte"
            best, median = timed(make(size, total // 8 if small else total), args.rounds)
            print(f"{name:14} {size:>7} {best:>10.1f} {median:>8.1f}")


if __name__ == "__main__":
    main()
