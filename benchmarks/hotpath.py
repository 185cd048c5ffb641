"""The broker's hot path without sockets: CPU per message, publish -> route -> deliver -> ack.

Two real :class:`~pigeon.protocols.amqp091.adapter.AMQPHandler` objects (a
publisher's connection and a consumer's) are fed the bytes a client would send:
batches of pre-encoded basic.publish frames, and one ``multiple`` basic.ack per
batch. No socket and no event-loop wake-ups, so what is left is the Python work
per message, measured as CPU time (``time.process_time``) and reported as the best
of several rounds: steady enough to compare two commits on a busy machine, where
end-to-end throughput is not. End-to-end numbers come from ``pigeon bench``.

    python -m benchmarks.hotpath                         # 16 B, no confirms
    python -m benchmarks.hotpath --confirm --size 1024 --rounds 7
    PYTHONPATH=/path/to/other/checkout/src python -m benchmarks.hotpath   # another commit
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pigeon.auth.users import UserStore
from pigeon.bench import wire
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.protocols.amqp091.adapter import AMQPHandler

CHANNEL = 1
QUEUE = "hotpath"


@dataclass
class Outcome:
    published: int
    delivered: int
    confirmed: int  # basic.ack frames the publisher got (one per batch: multiple)
    best_us: float  # CPU µs per message, best round
    rounds_us: list[float]


def _feed(handler: AMQPHandler, data: bytes) -> bytes:
    handler.conn.receive_data(data)
    while handler.process():
        pass
    return handler.conn.data_to_send()


def _connect(context: Services, loop: asyncio.AbstractEventLoop) -> AMQPHandler:
    handler = AMQPHandler(context, loop)
    for frame in (
        wire.PROTOCOL_HEADER,
        wire.start_ok("guest", "guest"),
        wire.tune_ok(2047, 131072, 0),
        wire.connection_open("/"),
        wire.channel_open(CHANNEL),
    ):
        _feed(handler, frame)
    return handler


def _count(data: bytes, ident: tuple[int, int]) -> int:
    """Method frames of one kind in ``data`` (basic.deliver, basic.ack)."""
    count = offset = 0
    while offset < len(data):
        kind, _, size = wire.FRAME_HEAD.unpack_from(data, offset)
        if kind == wire.FRAME_METHOD and wire.METHOD_ID.unpack_from(data, offset + 7) == ident:
            count += 1
        offset += 8 + size
    return count


async def measure(
    size: int, count: int, rounds: int, batch: int, prefetch: int, confirm: bool
) -> Outcome:
    loop = asyncio.get_running_loop()
    node = Node(loop)
    node.add_vhost("/")
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}))
    users.set_permission("/", "guest")
    context = Services(node=node, users=users)
    publisher, consumer = _connect(context, loop), _connect(context, loop)
    _feed(
        consumer,
        wire.basic_qos(CHANNEL, prefetch)
        + wire.queue_declare(CHANNEL, QUEUE, False)
        + wire.basic_consume(CHANNEL, QUEUE, "c", False),
    )
    if confirm:
        _feed(publisher, wire.confirm_select(CHANNEL))
    template = wire.MessageTemplate.publish(CHANNEL, "", QUEUE, size, False)
    published = delivered = confirmed = 0
    results = []
    for _ in range(rounds):
        gc.collect()
        confirms: list[bytes] = []
        deliveries: list[bytes] = []
        start = time.process_time()
        sent = 0
        while sent < count:
            confirms.append(_feed(publisher, bytes(template.batch(published + 1, batch, 0))))
            published += batch
            sent += batch
            deliveries.append(consumer.conn.data_to_send())
            # Every message so far was delivered (the tags count up from 1), unless the
            # broker is broken: then this ack closes the channel and the counts differ.
            _feed(consumer, wire.basic_ack(CHANNEL, published, True))
            await asyncio.sleep(0)  # let call_soon callbacks run, as a loop would
        results.append((time.process_time() - start) / sent * 1e6)
        # Counted outside the timed part: parsing the output is the client's work.
        delivered += sum(_count(data, wire.BASIC_DELIVER) for data in deliveries)
        confirmed += sum(_count(data, wire.BASIC_ACK) for data in confirms)
    return Outcome(published, delivered, confirmed, min(results), results)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=16, help="body bytes (at least 16)")
    p.add_argument("--count", type=int, default=100_000, help="messages per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=200, help="publishes per read, acked at once")
    p.add_argument("--prefetch", type=int, default=1000)
    p.add_argument("--confirm", action="store_true", help="publisher confirms")
    a = p.parse_args(argv)
    out = asyncio.run(measure(a.size, a.count, a.rounds, a.batch, a.prefetch, a.confirm))
    rounds = " ".join(f"{r:.2f}" for r in out.rounds_us)
    print(
        f"{out.best_us:.2f} CPU µs per message (best of {a.rounds}; rounds: {rounds}); "
        f"size {a.size}, confirms {'on' if a.confirm else 'off'}, "
        f"published {out.published}, delivered {out.delivered}, confirm frames {out.confirmed}"
    )
    return 0 if out.delivered == out.published else 1


if __name__ == "__main__":
    raise SystemExit(main())
