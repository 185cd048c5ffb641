"""Micro-benchmark of the AMQP layer alone: publish parsing and deliver encoding.

    python -m benchmarks.micro [--count 200000] [--rounds 5] [--size 16] [--props none]

No sockets, no event loop, no core: a :class:`ServerConnection` past the
handshake is fed pre-encoded basic.publish frames (method + content header +
body) in socket-sized reads, and every event is drained as the adapter drains
them; then ``send_deliver`` is called as the channel calls it, the output
collected every 128 messages as the glue's flush does. It also times
basic.ack parsing. Reported: the best and the median of ``--rounds`` rounds,
in microseconds of this process's CPU time per message (CPU time, not wall
time, so that other work on the machine disturbs the numbers less).

This measures pigeon's own code, so it imports ``pigeon`` (unlike the load
generator, which must measure any broker the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pigeon.protocols.amqp091 import connection as c
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    FRAME_BODY,
    FRAME_HEADER,
    PROTOCOL_HEADER,
    encode_content_header,
    encode_frame,
    encode_method_frame,
    encode_properties,
)
from pigeon.protocols.amqp091.codec import BasicProperties as Properties

READ_SIZE = 65536  # what one data_received typically hands over under load
FLUSH_EVERY = 128  # deliveries between two data_to_send() calls

PROPERTY_SETS: dict[str, Properties] = {
    "none": Properties(),
    "persistent": Properties(delivery_mode=2),
    "pika": Properties(content_type="application/json", delivery_mode=2, headers={"k": 1}),
}


def connected() -> c.ServerConnection:
    """A connection past connection.open with channel 1 open, output drained."""
    conn = c.ServerConnection({"product": "micro"})
    start_ok = m.ConnectionStartOk({}, "PLAIN", b"\0guest\0guest", "en_US")
    conn.receive_data(PROTOCOL_HEADER + encode_method_frame(0, start_ok))
    _drain(conn)
    conn.accept_login()
    conn.receive_data(encode_method_frame(0, m.ConnectionTuneOk(2047, 131072, 0)))
    conn.receive_data(encode_method_frame(0, m.ConnectionOpen("/")))
    _drain(conn)
    conn.accept_open()
    conn.receive_data(encode_method_frame(1, m.ChannelOpen()))
    _drain(conn)
    conn.data_to_send()
    return conn


def _drain(conn: c.ServerConnection) -> int:
    count = 0
    while conn.next_event() is not c.NEED_DATA:
        count += 1
    return count


def publish_stream(count: int, size: int, props: Properties) -> list[bytes]:
    """``count`` publishes to amq.direct, cut into READ_SIZE reads (frames split
    across reads, as TCP delivers them)."""
    method = encode_method_frame(1, m.BasicPublish(0, "amq.direct", "bench.key"))
    body = bytes(size)
    content_header = encode_content_header(60, size, encode_properties(props))
    header = encode_frame(FRAME_HEADER, 1, content_header)
    one = method + header + (encode_frame(FRAME_BODY, 1, body) if size else b"")
    data = one * count
    return [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]


def time_publish(reads: list[bytes], count: int) -> float:
    conn = connected()
    receive, next_event, need = conn.receive_data, conn.next_event, c.NEED_DATA
    seen = 0
    start = time.process_time_ns()
    for data in reads:
        receive(data)
        while next_event() is not need:
            seen += 1
    elapsed = time.process_time_ns() - start
    assert seen == count, (seen, count)
    return elapsed / count / 1000


def time_ack(count: int) -> float:
    one = encode_method_frame(1, m.BasicAck(1, False))
    data = one * count
    reads = [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]
    conn = connected()
    receive, next_event, need = conn.receive_data, conn.next_event, c.NEED_DATA
    seen = 0
    start = time.process_time_ns()
    for chunk in reads:
        receive(chunk)
        while next_event() is not need:
            seen += 1
    elapsed = time.process_time_ns() - start
    assert seen == count
    return elapsed / count / 1000


def time_deliver(count: int, size: int, props: Properties) -> float:
    conn = connected()
    encoded, body = encode_properties(props), bytes(size)
    send, flush = conn.send_deliver, conn.data_to_send
    total = 0
    start = time.process_time_ns()
    for tag in range(1, count + 1):
        send(1, "ctag-1.bench", tag, False, "amq.direct", "bench.key", encoded, body)
        if not tag % FLUSH_EVERY:
            total += len(flush())
    total += len(flush())
    elapsed = time.process_time_ns() - start
    assert total > count * size
    return elapsed / count / 1000


def rounds(fn: Callable[[], float], n: int) -> tuple[float, float]:
    times = [fn() for _ in range(n)]
    return min(times), statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    p.add_argument("--count", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--props", choices=sorted(PROPERTY_SETS), default="none")
    p.add_argument("--json", action="store_true")
    opts = p.parse_args(argv)
    props = PROPERTY_SETS[opts.props]
    reads = publish_stream(opts.count, opts.size, props)
    results = {
        "publish next_event": rounds(lambda: time_publish(reads, opts.count), opts.rounds),
        "ack next_event": rounds(lambda: time_ack(opts.count), opts.rounds),
        "send_deliver": rounds(lambda: time_deliver(opts.count, opts.size, props), opts.rounds),
    }
    if opts.json:
        print(json.dumps({k: {"best": b, "median": md} for k, (b, md) in results.items()}))
        return 0
    print(
        f"{opts.count} messages of {opts.size} B, properties {opts.props!r}, "
        f"{opts.rounds} rounds (µs per message)"
    )
    for name, (best, med) in results.items():
        print(f"  {name:<20} best {best:6.2f}   median {med:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
