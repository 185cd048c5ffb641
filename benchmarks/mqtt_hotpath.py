"""The MQTT hot path without sockets: CPU per message, PUBLISH -> route -> deliver -> PUBACK.

Two real :class:`~pigeon.protocols.mqtt.session.MQTTSession` objects (a
publisher's connection and a subscriber's) are fed the bytes a client would
send: batches of pre-encoded PUBLISH packets, and at QoS 1 the subscriber's
PUBACKs for what it got. No socket and no event-loop wake-ups, so what is left
is the Python work per message, as CPU time (``time.process_time``), best of
several rounds, as ``benchmarks.hotpath`` does for AMQP.

    python -m benchmarks.mqtt_hotpath                     # QoS 0, 16 B
    python -m benchmarks.mqtt_hotpath --qos 1 --size 1024 --rounds 7
    python -m cProfile -s tottime -m benchmarks.mqtt_hotpath --rounds 1 | head -40
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

if not __package__:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pigeon.auth.users import UserStore
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    Connect,
    Puback,
    Publish,
    Subscribe,
    SubscriptionOptions,
)
from pigeon.protocols.mqtt.session import MQTTSession
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.transport.session import Peer

TOPIC = "bench/hotpath"


@dataclass
class Outcome:
    published: int
    delivered: int
    best_us: float
    rounds_us: list[float]


def _noop() -> None:
    pass


def _feed(session: MQTTSession, data: bytes) -> bytes:
    session.receive_data(data)
    while session.process(1 << 30):
        pass
    return session.data_to_send()


def _open(context: MQTTContext, client_id: str) -> MQTTSession:
    session = MQTTSession(context, Peer("127.0.0.1:1", True), _noop)
    _feed(session, encode(Connect(MQTT_3_1_1, client_id), MQTT_3_1_1))
    return session


async def measure(size: int, count: int, rounds: int, batch: int, qos: int) -> Outcome:
    loop = asyncio.get_running_loop()
    node = Node(loop)
    node.add_vhost("/")
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}))
    users.set_permission("/", "guest")
    context = MQTTContext(Services(node=node, users=users), loop)
    publisher, subscriber = _open(context, "pub"), _open(context, "sub")
    options = SubscriptionOptions(qos=qos)
    _feed(subscriber, encode(Subscribe(1, ((TOPIC, options),)), MQTT_3_1_1))
    body = b"x" * size
    packets = [
        encode(Publish(TOPIC, body, qos=qos, packet_id=(n + 1) if qos else None), MQTT_3_1_1)
        for n in range(batch)
    ]
    chunk = b"".join(packets)
    reader = Decoder(version=MQTT_3_1_1, from_client=False)
    published = delivered = 0
    results = []
    owed = b""  # PUBACKs the subscriber owes, sent with its next read
    for _ in range(rounds):
        gc.collect()
        outputs: list[bytes] = []
        start = time.process_time()
        sent = 0
        while sent < count:
            outputs.append(_feed(publisher, chunk))
            published += batch
            sent += batch
            got = _feed(subscriber, owed)
            outputs.append(got)
            if qos:  # the subscriber's PUBACKs, as its client would send them
                owed = b"".join(
                    encode(Puback(p.packet_id), MQTT_3_1_1)
                    for p in reader.feed(got)
                    if isinstance(p, Publish) and p.packet_id is not None
                )
            await asyncio.sleep(0)  # let call_soon callbacks run, as a loop would
        results.append((time.process_time() - start) / sent * 1e6)
        for data in outputs:
            delivered += data.count(TOPIC.encode())
    return Outcome(published, delivered, min(results), results)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=16, help="payload bytes")
    p.add_argument("--count", type=int, default=50_000, help="messages per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=128, help="publishes per read")
    p.add_argument("--qos", type=int, choices=(0, 1), default=0)
    a = p.parse_args(argv)
    out = asyncio.run(measure(a.size, a.count, a.rounds, a.batch, a.qos))
    rounds = " ".join(f"{r:.2f}" for r in out.rounds_us)
    print(
        f"{out.best_us:.2f} CPU µs per message (best of {a.rounds}; rounds: {rounds}); "
        f"size {a.size}, QoS {a.qos}, published {out.published}, delivered {out.delivered}"
    )
    return 0 if out.delivered == out.published else 1


if __name__ == "__main__":
    raise SystemExit(main())
