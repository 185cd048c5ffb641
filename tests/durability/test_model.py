"""Model-based test of one durable queue through clean and dirty restarts.

After RabbitMQ's ``classic_queue_prop_SUITE``: Hypothesis drives a real broker
(a child process, so that a dirty restart is a real SIGKILL) through publish
(persistent or not, confirmed or not), basic.get, consume/cancel, ack, reject,
requeue, purge, clean restart and dirty restart, while a model keeps, for each
message, whether it *must* be in the queue, *may* be (its fate is uncertain
after a dirty restart), or is gone.

What the model knows (one client connection, so the broker handles every
operation in the order it was sent):

- A persistent message is durable once its own confirm, or the confirm of a
  later persistent publish, came back: the store writes in order and a
  confirm waits for everything written before it.
- An ack, reject or purge of a persistent message is durable under the same
  condition; until then a dirty restart may bring the message back.
- A clean restart (the client closes, the broker stops with SIGTERM) loses
  only transient messages; a dirty restart (SIGKILL) keeps exactly the
  durable persistent messages, maybe some others, and never a transient one.
- Unacked messages go back to their place when their channel closes; the
  ready messages are always in publish order (requeued ones back in their
  original place, recovered ones in their stored order).
- Recovered messages come back with ``redelivered`` set; so do requeued ones.

Every delivery is checked against the model: it must be a message that may be
in the queue, every message that must be there before it was delivered first
(order), and its ``redelivered`` flag must be the model's. Messages that may
be there and were skipped are known to be gone. At the end the queue is
drained: every message that must be there is.
"""

from __future__ import annotations

import bisect
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pika
import pika.exceptions
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pika.adapters.blocking_connection import BlockingChannel

from .broker_process import BrokerProcess
from .clients import abandon, body_of, connect, number_of

SIZE = 64
RESTARTS_PER_EXAMPLE = 2  # a restart costs a broker start (~1-2 s): keep runs bounded


@dataclass
class Msg:
    id: int
    persistent: bool
    durable: bool = False  # on disk for sure (see the module docstring)
    certain: bool = True  # False: may or may not be in the queue
    redelivered: bool = False


class Model:
    """The queue as the client must see it."""

    def __init__(self) -> None:
        self.ready: list[Msg] = []  # always sorted by id: publish order
        self.unacked: dict[int, Msg] = {}  # delivery tag -> message
        self.settled: list[Msg] = []  # persistent, acked/rejected/purged, not yet durably

    def put_back(self, msg: Msg) -> None:
        bisect.insort(self.ready, msg, key=lambda m: m.id)

    def barrier(self) -> None:
        """A persistent publish was confirmed: everything before it is on disk."""
        for msg in self.ready + list(self.unacked.values()):
            msg.durable = msg.durable or msg.persistent
        self.settled.clear()

    def deliver(self, number: int, redelivered: bool, tag: int) -> None:
        """Check one delivery against the queue's head and take it."""
        index = next((i for i, m in enumerate(self.ready) if m.id == number), None)
        assert index is not None, f"message {number} delivered but it cannot be in the queue"
        skipped = self.ready[:index]
        must = [m.id for m in skipped if m.certain]
        assert not must, f"message {number} delivered before {must}: lost or out of order"
        msg = self.ready[index]
        assert redelivered == msg.redelivered, (
            f"message {number}: redelivered={redelivered}, expected {msg.redelivered}"
        )
        del self.ready[: index + 1]  # the skipped ones were not recovered
        msg.certain = True
        self.unacked[tag] = msg

    def empty(self) -> None:
        must = [m.id for m in self.ready if m.certain]
        assert not must, f"queue empty but {must} must be in it"
        self.ready.clear()

    def check_count(self, count: int, what: str) -> None:
        must = sum(m.certain for m in self.ready)
        assert must <= count <= len(self.ready), (
            f"{what}: {count} ready, the model says {must} to {len(self.ready)}"
        )

    def channel_closed(self) -> None:
        """Unacked messages go back to their places, marked redelivered."""
        for msg in self.unacked.values():
            msg.redelivered = True
            self.put_back(msg)
        self.unacked.clear()

    def clean_restart(self) -> None:
        self.channel_closed()
        self.ready = [m for m in self.ready if m.persistent]
        for msg in self.ready:
            msg.durable = True
            msg.redelivered = True
        self.settled.clear()

    def dirty_restart(self) -> None:
        self.channel_closed()
        survivors = [m for m in self.ready if m.persistent]
        for msg in self.settled:
            msg.certain = False  # its ack may not have reached the disk
            survivors.append(msg)
        self.ready = []
        for msg in survivors:
            msg.certain = msg.certain and msg.durable
            msg.redelivered = True
            self.put_back(msg)
        self.settled.clear()


def restart_allowed(machine: QueueMachine) -> bool:
    """Restarts are slow: a few per example, once there is something to lose."""
    return machine.restarts < RESTARTS_PER_EXAMPLE and machine.next_id >= 4


class QueueMachine(RuleBasedStateMachine):
    broker: ClassVar[BrokerProcess]

    def __init__(self) -> None:
        super().__init__()
        self.queue = f"model-{uuid.uuid4().hex[:8]}"
        self.model = Model()
        self.next_id = 0
        self.restarts = 0
        self.connection: pika.BlockingConnection | None = None

    # -- the client ---------------------------------------------------------------

    def open(self) -> None:
        self.connection = connect(self.broker.url)
        self.confirmed = self.connection.channel()
        self.confirmed.confirm_delivery()
        self.plain = self.connection.channel()
        self.taker = self.connection.channel()

    @property
    def client(self) -> pika.BlockingConnection:
        assert self.connection is not None
        return self.connection

    def ready_count(self, channel: BlockingChannel | None = None) -> int:
        channel = channel or self.taker
        return channel.queue_declare(self.queue, passive=True).method.message_count

    def publish(self, persistent: bool, confirm: bool) -> Msg:
        msg = Msg(self.next_id, persistent)
        self.next_id += 1
        properties = pika.BasicProperties(delivery_mode=2 if persistent else 1)
        channel = self.confirmed if confirm else self.plain
        channel.basic_publish("", self.queue, body_of(msg.id, SIZE), properties)
        self.model.ready.append(msg)
        if confirm and persistent:
            self.model.barrier()
        return msg

    @initialize()
    def declare(self) -> None:
        if not self.broker.running:  # an earlier, failed example may have left it down
            self.broker.start()
        self.open()
        self.taker.queue_declare(self.queue, durable=True)
        # A confirmed persistent publish puts the declaration on disk too.
        self.publish(persistent=True, confirm=True)

    def teardown(self) -> None:
        if self.connection is None or not self.connection.is_open:
            abandon(self.connection)
            return
        try:
            while True:
                method, _props, body = self.taker.basic_get(self.queue)
                if method is None:
                    self.model.empty()
                    break
                self.model.deliver(
                    number_of(body, SIZE), bool(method.redelivered), method.delivery_tag
                )
            self.taker.queue_delete(self.queue)
        finally:
            abandon(self.connection)

    # -- rules ----------------------------------------------------------------------

    @rule(persistent=st.booleans(), confirm=st.booleans())
    def publish_one(self, persistent: bool, confirm: bool) -> None:
        self.publish(persistent, confirm)

    @rule(kinds=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=8))
    def publish_many(self, kinds: list[tuple[bool, bool]]) -> None:
        for persistent, confirm in kinds:
            self.publish(persistent, confirm)

    @rule()
    def get(self) -> None:
        method, _props, body = self.taker.basic_get(self.queue)
        if method is None:
            self.model.empty()
        else:
            self.model.deliver(number_of(body, SIZE), bool(method.redelivered), method.delivery_tag)

    @rule(prefetch=st.integers(1, 5))
    def consume_then_cancel(self, prefetch: int) -> None:
        """A consumer with a prefetch gets the head of the queue, in order."""
        ready = self.ready_count()
        self.model.check_count(ready, "before consume")
        expected = min(prefetch, ready)
        got: list[tuple[int, bool, int]] = []
        self.taker.basic_qos(prefetch_count=prefetch)
        tag = self.taker.basic_consume(
            self.queue,
            lambda _ch, method, _props, body: got.append(
                (number_of(body, SIZE), bool(method.redelivered), method.delivery_tag)
            ),
        )
        deadline = time.monotonic() + 10
        while len(got) < expected:
            assert time.monotonic() < deadline, f"consumer got {len(got)} of {expected}"
            self.client.process_data_events(time_limit=0.02)
        self.taker.basic_cancel(tag)
        assert len(got) == expected, f"consumer got {len(got)}, prefetch {prefetch}"
        for number, redelivered, delivery_tag in got:
            self.model.deliver(number, redelivered, delivery_tag)

    @precondition(lambda self: self.model.unacked)
    @rule(pick=st.integers(0, 1000), how=st.sampled_from(["ack", "reject", "requeue"]))
    def settle(self, pick: int, how: str) -> None:
        tags = sorted(self.model.unacked)
        tag = tags[pick % len(tags)]
        msg = self.model.unacked.pop(tag)
        if how == "ack":
            self.taker.basic_ack(tag)
        elif how == "reject":
            self.taker.basic_reject(tag, requeue=False)
        else:
            self.taker.basic_nack(tag, requeue=True)
            msg.redelivered = True
            self.model.put_back(msg)
            return
        if msg.persistent:
            self.model.settled.append(msg)

    @rule()
    def purge(self) -> None:
        purged = self.taker.queue_purge(self.queue).method.message_count
        self.model.check_count(purged, "purge-ok")
        self.model.settled.extend(m for m in self.model.ready if m.persistent)
        self.model.ready.clear()

    @precondition(restart_allowed)
    @rule()
    def clean_restart(self) -> None:
        self.restarts += 1
        self.client.close()  # acks before it are handled; unacked messages go back
        self.broker.stop()
        self.broker.start()
        self.model.clean_restart()
        self.open()

    @precondition(restart_allowed)
    @rule()
    def dirty_restart(self) -> None:
        self.restarts += 1
        self.broker.kill()
        abandon(self.connection)
        self.broker.start()
        warnings = self.broker.crash_warnings(self.broker.run_start)
        assert not warnings, f"a SIGKILL damages no file, yet: {warnings}"
        self.model.dirty_restart()
        self.open()

    @invariant()
    def ready_count_fits(self) -> None:
        if self.connection is not None and self.connection.is_open:
            self.model.check_count(self.ready_count(), "queue.declare-ok")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    running = BrokerProcess(tmp_path_factory.mktemp("model") / "data")
    running.start()
    yield running
    running.kill()
    running.check_no_errors()


def run(broker: BrokerProcess, examples: int, steps: int) -> None:
    QueueMachine.broker = broker
    # Shrinking replays examples with restarts for minutes: opt in to it.
    shrink = os.environ.get("PIGEON_MODEL_SHRINK") == "1"
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            phases=list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )


@pytest.mark.timeout(120)
def test_queue_model_through_restarts(broker: BrokerProcess) -> None:
    run(broker, examples=15, steps=25)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("part", range(4))
def test_queue_model_through_restarts_long(broker: BrokerProcess, part: int) -> None:
    run(broker, examples=20, steps=40)
