"""Crash test: a broker SIGKILLed at random moments never loses a confirmed message.

Each cycle starts the broker (a child process) on the same data folder, drains
the durable queue and checks it against what earlier cycles recorded, then
runs two publishers (uniquely numbered persistent messages, publisher
confirms) and an acker (basic.get + basic.ack) until the broker is killed at
a random moment. The check after each restart:

- lost: confirmed, never acked, and not delivered after the restart. Must be 0.
- resurrected: acked, and the ack was on disk (a confirm was sent for a
  publish made after the ack had been processed: the store writes in order),
  yet delivered again. Must be 0. Acks only known to be processed (a later
  round trip on the channel) may come back, as in RabbitMQ: an ack is not
  confirmed in AMQP 0-9-1; those are counted and reported.
- every recovered message has ``redelivered`` set, is byte-for-byte what was
  published, and each publisher's messages come back in publish order.
- the restart logs no WARNING: a SIGKILL damages no file.

The seed of the random kill times is printed; set ``PIGEON_CRASH_SEED`` to
replay one run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions
import pytest

from .broker_process import BrokerProcess
from .clients import PERSISTENT, Received, abandon, body_of, connect, drain, number_of
from .conftest import MakeBroker

QUEUE = "crash-test"
PUBLISHERS = 2
ACK_EVERY = 3  # the acker takes one message for every ACK_EVERY confirmed
KILL_AFTER = (0.2, 1.5)  # seconds of publishing before the SIGKILL


@dataclass
class Ledger:
    """What the clients know, across all cycles."""

    published: set[int] = field(default_factory=set)
    sent_at: dict[int, float] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    ack_sent: set[int] = field(default_factory=set)
    # number -> when a round trip after its ack came back (the ack was processed)
    ack_processed_at: dict[int, float] = field(default_factory=dict)
    ack_durable: set[int] = field(default_factory=set)
    delivered: set[int] = field(default_factory=set)  # ever delivered, by any client
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Condition = field(default_factory=threading.Condition)

    def settle_acks(self) -> None:
        """Acks processed before a publish that was later confirmed are on disk."""
        barrier = max((self.sent_at[n] for n in self.confirmed), default=0.0)
        for number, processed in self.ack_processed_at.items():
            if processed < barrier:
                self.ack_durable.add(number)


def publish(url: str, first: int, step: int, ledger: Ledger, stop: threading.Event) -> None:
    """Publish first, first+step, ... with confirms until the broker dies."""
    number = first
    connection = None
    try:
        connection = connect(url)
        channel = connection.channel()
        channel.confirm_delivery()
        while not stop.is_set():
            with ledger.lock:
                ledger.published.add(number)
                ledger.sent_at[number] = time.monotonic()
            channel.basic_publish("", QUEUE, body_of(number), PERSISTENT)
            with ledger.progress:
                ledger.confirmed.add(number)
                ledger.progress.notify_all()
            number += step
    except (pika.exceptions.AMQPError, OSError):
        return  # the broker was killed
    finally:
        abandon(connection)


def ack_some(url: str, ledger: Ledger, stop: threading.Event) -> None:
    """basic.get and ack a share of the messages; each get proves the ack before it."""
    taken = 0
    last_ack: int | None = None
    confirmed_before = len(ledger.confirmed)
    connection = None
    try:
        connection = connect(url)
        channel = connection.channel()
        while not stop.is_set():
            with ledger.progress:
                if len(ledger.confirmed) - confirmed_before < ACK_EVERY * (taken + 1):
                    ledger.progress.wait(0.05)
                    continue
            method, _props, body = channel.basic_get(QUEUE)
            with ledger.lock:
                if last_ack is not None:  # the get's reply came after the ack was handled
                    ledger.ack_processed_at[last_ack] = time.monotonic()
                    last_ack = None
            if method is None:
                continue
            number = number_of(body)
            with ledger.lock:
                ledger.delivered.add(number)
                # Counted before it is sent: a kill in between must not look like a loss.
                ledger.ack_sent.add(number)
            channel.basic_ack(method.delivery_tag)
            last_ack = number
            taken += 1
    except (pika.exceptions.AMQPError, OSError):
        return
    finally:
        abandon(connection)


@dataclass
class Report:
    cycle: int
    drained: int
    recovered_unconfirmed: int
    duplicates: int
    acks_undone: int


def check_recovery(ledger: Ledger, got: list[Received], cycle: int, seed: int) -> Report:
    numbers = [r.number for r in got]
    where = f"cycle {cycle}, seed {seed}"
    assert set(numbers) <= ledger.published, f"{where}: never published"
    assert all(r.redelivered for r in got), f"{where}: recovered without redelivered"
    for publisher in range(PUBLISHERS):
        mine = [n for n in numbers if n % PUBLISHERS == publisher]
        assert mine == sorted(set(mine)), f"{where}: publisher {publisher}'s order broken"
    ledger.settle_acks()
    lost = ledger.confirmed - ledger.ack_sent - set(numbers)
    assert not lost, f"{where}: {len(lost)} confirmed messages lost: {sorted(lost)[:20]}"
    resurrected = ledger.ack_durable & set(numbers)
    assert not resurrected, f"{where}: acked messages came back: {sorted(resurrected)[:20]}"
    report = Report(
        cycle,
        len(numbers),
        recovered_unconfirmed=len(set(numbers) - ledger.confirmed),
        duplicates=len(ledger.delivered & set(numbers)),
        acks_undone=len(ledger.ack_sent & set(numbers)),
    )
    ledger.delivered |= set(numbers)
    return report


def one_cycle(broker: BrokerProcess, ledger: Ledger, rng: random.Random, first: int) -> None:
    """Publish and ack until a SIGKILL at a random moment."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=publish, args=(broker.url, first + i, PUBLISHERS, ledger, stop))
        for i in range(PUBLISHERS)
    ]
    threads.append(threading.Thread(target=ack_some, args=(broker.url, ledger, stop)))
    for thread in threads:
        thread.start()
    # The crash point itself: a random moment is the input of this test, not a wait.
    time.sleep(rng.uniform(*KILL_AFTER))
    broker.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive(), "a client thread hangs after the broker died"


def record_drain(ledger: Ledger, got: list[Received], drained_at: float) -> None:
    """The drain's acks were processed before its connection closed; the next
    cycle's confirms will put them on disk."""
    with ledger.lock:
        for received in got:
            ledger.ack_sent.add(received.number)
            ledger.ack_processed_at[received.number] = drained_at


def run_cycles(broker: BrokerProcess, cycles: int, seed: int) -> list[Report]:
    rng = random.Random(seed)
    ledger = Ledger()
    broker.start()
    connection = connect(broker.url)
    connection.channel().queue_declare(QUEUE, durable=True)
    connection.close()
    broker.stop()  # a clean stop: the queue itself is on disk before the first crash
    broker.start()
    reports = []
    for cycle in range(cycles):
        one_cycle(broker, ledger, rng, first=cycle * 1_000_000)
        broker.start()
        # A SIGKILL damages no file: recovery has nothing to warn about.
        warnings = broker.crash_warnings(broker.run_start)
        assert not warnings, f"cycle {cycle}, seed {seed}: {warnings}"
        got = drain(broker.url, QUEUE)
        drained_at = time.monotonic()
        reports.append(check_recovery(ledger, got, cycle, seed))
        record_drain(ledger, got, drained_at)
    broker.stop()
    assert ledger.confirmed, "nothing was ever confirmed"
    return reports


def seed_for_run() -> int:
    seed = int(os.environ.get("PIGEON_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed: {seed} (replay with PIGEON_CRASH_SEED={seed})")
    return seed


def summary(reports: list[Report]) -> str:
    return (
        f"{len(reports)} cycles: {sum(r.drained for r in reports)} recovered, "
        f"{sum(r.recovered_unconfirmed for r in reports)} unconfirmed but recovered, "
        f"{sum(r.duplicates for r in reports)} delivered twice, "
        f"{sum(r.acks_undone for r in reports)} of them acked (ack not yet on disk), "
        f"0 lost"
    )


@pytest.mark.timeout(120)
def test_twenty_kills_lose_nothing_confirmed(tmp_path: Path, make_broker: MakeBroker) -> None:
    broker = make_broker(tmp_path / "data")
    reports = run_cycles(broker, 20, seed_for_run())
    print(summary(reports))
    assert sum(r.drained for r in reports) > 0, "no cycle had anything to recover"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("part", range(10))
def test_two_hundred_kills_lose_nothing_confirmed(
    tmp_path: Path, make_broker: MakeBroker, part: int
) -> None:
    """The long mode: 10 x 20 cycles (each part within the 120 s per-test limit)."""
    broker = make_broker(tmp_path / "data")
    reports = run_cycles(broker, 20, seed_for_run() + part)
    print(summary(reports))
