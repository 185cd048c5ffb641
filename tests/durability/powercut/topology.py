"""Topology changes during the power-cut test, and what must survive of them.

A worker declares, binds, unbinds and deletes a small pool of durable queues
(bound to one durable direct exchange, routing key = queue name) and
declares and deletes a few durable exchanges. Each operation is recorded when
it is sent and when its reply arrives.

What must survive a cut: since issue 13 part 2, a declare-ok, bind-ok or
delete-ok goes out once the change is on disk, so after a restart each entity
must be in the state of its last answered operation, or of the one sent after
it and not answered (it may or may not have reached the disk).

Before part 2 a reply proved nothing, and the check was weaker (set
``REPLY_MEANS_DURABLE`` to False to get it back): the store writes in order,
so a change whose reply arrived before a publish that was later confirmed is
on disk with that publish (the *barrier*, as for the acks); each entity had
to be in the state of its last operation before the barrier, or of a later
one. That check passed on the code before part 2, while the strict one failed
at the first cut.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from ..clients import abandon, connect

# Issue 13 part 2: topology replies go out after the disk has the change.
REPLY_MEANS_DURABLE = True

EXCHANGE = "powercut-topo"  # the durable direct exchange the pool binds to
QUEUES = [f"powercut-topo-q{i}" for i in range(6)]
EXCHANGES = [f"powercut-topo-x{i}" for i in range(3)]
ABSENT, PRESENT, BOUND = "absent", "present", "bound"


@dataclass
class Op:
    state: str  # the entity's state once the operation is done
    sent_at: float
    reply_at: float | None = None


@dataclass
class Entity:
    kind: str  # "queue" or "exchange"
    name: str
    baseline: str = ABSENT  # as found after the last restart (it was on disk)
    ops: list[Op] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.ops[-1].state if self.ops else self.baseline

    def allowed(self, barrier: float) -> list[str]:
        """States the entity may be found in after a cut (see the module's docstring)."""
        durable = -1
        for index, op in enumerate(self.ops):
            replied = op.reply_at is not None
            if replied and (REPLY_MEANS_DURABLE or op.reply_at < barrier):  # type: ignore[operator]
                durable = index
        states = [op.state for op in self.ops[max(durable, 0) :]]
        return [self.baseline, *states] if durable < 0 else states


@dataclass
class Topology:
    entities: list[Entity] = field(
        default_factory=lambda: (
            [Entity("queue", q) for q in QUEUES] + [Entity("exchange", x) for x in EXCHANGES]
        )
    )
    lock: threading.Lock = field(default_factory=threading.Lock)


def setup(channel: BlockingChannel) -> None:
    channel.exchange_declare(EXCHANGE, "direct", durable=True)


def _next(channel: BlockingChannel, entity: Entity, rng: random.Random) -> tuple[str, object]:
    """The next operation for an entity: (state it leads to, the call to make)."""
    name = entity.name
    if entity.kind == "exchange":
        if entity.state == ABSENT:
            return PRESENT, lambda: channel.exchange_declare(name, "fanout", durable=True)
        return ABSENT, lambda: channel.exchange_delete(name)
    if entity.state == ABSENT:
        return PRESENT, lambda: channel.queue_declare(name, durable=True)
    if entity.state == PRESENT and rng.random() < 0.7:
        return BOUND, lambda: channel.queue_bind(name, EXCHANGE, routing_key=name)
    if entity.state == BOUND and rng.random() < 0.5:
        return PRESENT, lambda: channel.queue_unbind(name, EXCHANGE, routing_key=name)
    return ABSENT, lambda: channel.queue_delete(name)


def work(url: str, topology: Topology, seed: int, stop: threading.Event) -> None:
    """Change the topology, one operation at a time, until the broker dies."""
    rng = random.Random(seed)
    connection = None
    try:
        connection = connect(url)
        channel = connection.channel()
        while not stop.is_set():
            entity = rng.choice(topology.entities)
            state, call = _next(channel, entity, rng)
            op = Op(state, time.monotonic())
            with topology.lock:
                entity.ops.append(op)
            call()  # type: ignore[operator]
            op.reply_at = time.monotonic()
    except (pika.exceptions.AMQPError, OSError):
        return  # the power was cut
    finally:
        abandon(connection)


def observe(url: str, entity: Entity) -> str:
    """The entity's state on a restarted broker, found through AMQP only."""
    connection = connect(url)
    try:
        channel = connection.channel()
        try:
            if entity.kind == "exchange":
                channel.exchange_declare(entity.name, passive=True)
                return PRESENT
            channel.queue_declare(entity.name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as closed:
            assert closed.reply_code == 404, closed
            return ABSENT
        # Bound? A mandatory probe to the exchange with the queue's name as key is
        # either routed (into the queue; it holds nothing else that is checked) or
        # returned.
        channel.confirm_delivery()
        try:
            channel.basic_publish(EXCHANGE, entity.name, b"probe", mandatory=True)
        except pika.exceptions.UnroutableError:
            return PRESENT
        return BOUND
    finally:
        abandon(connection)


def check(url: str, topology: Topology, barrier: float, where: str) -> int:
    """Assert every entity is in an allowed state; start the next cycle from it.

    Returns how many operations that had been answered were undone by the cut
    (0 unless ``REPLY_MEANS_DURABLE`` is False; the report prints it).
    """
    undone = 0
    for entity in topology.entities:
        found = observe(url, entity)
        allowed = entity.allowed(barrier)
        assert found in allowed, (
            f"{where}: {entity.kind} {entity.name} is {found}, must be one of {allowed} "
            f"(barrier {barrier:.6f}; last operations since the restart: {entity.ops[-6:]})"
        )
        replied = [i for i, op in enumerate(entity.ops) if op.reply_at is not None]
        if replied and found not in [op.state for op in entity.ops[replied[-1] :]]:
            undone += 1
        entity.baseline, entity.ops = found, []
    return undone
