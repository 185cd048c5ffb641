"""Disk full, end to end: publishers are blocked, nothing confirmed is lost, it recovers.

The data folder is on a 32 MiB tmpfs that the test mounts (root only; skipped
otherwise), most of it taken by a filler file; the broker child gets its
``PIGEON_DISK_FREE_LIMIT`` from the environment. A publisher sends persistent
messages with confirms, one at a time, until it stalls:

- with less free space than the limit, the disk alarm is on: the publisher's
  publish gets ``connection.blocked`` and nothing more is read from it;
- with a tiny limit the disk fills before the alarm (checked once a second)
  can trip: the store's writes fail, the confirm is held (never sent for what
  is not on disk), the failing store raises the disk alarm, and any
  connection that publishes is blocked.

(SQLite's WAL stays at ~4 MiB once it has grown, hence 32 MiB: an 8 MiB disk
stays below a 2 MB limit even after the filler is gone.)

Deleting the filler gives the space back: ``connection.unblocked``, the held
confirm arrives, ten more messages are confirmed. Then the broker is
SIGKILLed and restarted: every confirmed message is there, intact, in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pytest

from .broker_process import BrokerProcess
from .clients import PERSISTENT, abandon, body_of, connect, drain

MiB = 1024 * 1024
QUEUE = "disk-full"
OTHER = 10**9  # the number of the message a second publisher sends


@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("32m")


@dataclass
class Publisher:
    """Persistent messages with confirms, one at a time, on its own thread."""

    url: str
    size: int
    limit: int = 100_000  # lowered by the test once the disk has space again
    confirmed: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def blocked(self) -> bool:
        return bool(self.events) and self.events[-1] != "unblocked"

    def run(self) -> None:
        connection = None
        try:
            connection = connect(self.url)
            watch_blocking(connection, self.events)
            channel = connection.channel()
            channel.confirm_delivery()
            number = 0
            while number < self.limit:
                # pika's BlockingConnection runs the blocked/unblocked callbacks
                # only here, never while basic_publish waits for its confirm.
                connection.process_data_events(time_limit=0)
                if self.blocked:
                    # A well-behaved publisher: nothing more until unblocked.
                    connection.process_data_events(time_limit=0.05)
                    continue
                channel.basic_publish("", QUEUE, body_of(number, self.size), PERSISTENT)
                self.confirmed.append(number)
                number += 1
            connection.close()
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            abandon(connection)


def watch_blocking(connection: pika.BlockingConnection, events: list[str]) -> None:
    connection.add_on_connection_blocked_callback(
        lambda _conn, frame: events.append(f"blocked: {frame.method.reason}")
    )
    connection.add_on_connection_unblocked_callback(
        lambda _conn, _frame: events.append("unblocked")
    )


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def fill_until_stalled(broker: BrokerProcess, size: int) -> tuple[Publisher, threading.Thread]:
    broker.start()
    connection = connect(broker.url)
    connection.channel().queue_declare(QUEUE, durable=True)
    connection.close()
    publisher = Publisher(broker.url, size)
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    wait_for(
        lambda: publisher.events or publisher.error or broker.lines_with("WARNING"),
        "the disk alarm or a failing store stops the publisher",
    )
    assert publisher.error is None, publisher.error
    assert thread.is_alive(), "the publisher finished instead of being stopped"
    return publisher, thread


def free_space_and_finish(
    broker: BrokerProcess, publisher: Publisher, thread: threading.Thread, filler: Path
) -> None:
    """Give the space back; the publisher gets its confirms and publishes 10 more."""
    publisher.limit = len(publisher.confirmed) + 11  # the held one, then 10 more
    filler.unlink()
    thread.join(timeout=30)
    assert not thread.is_alive(), (
        f"the publisher stayed blocked: {publisher.events}, {len(publisher.confirmed)} "
        f"confirmed\n{broker.run_log()}"
    )
    assert publisher.error is None, publisher.error
    assert publisher.confirmed == list(range(publisher.limit))


def nothing_confirmed_lost(broker: BrokerProcess, publisher: Publisher) -> None:
    broker.kill()
    broker.start()
    got = drain(broker.url, QUEUE, size=publisher.size)
    numbers = [r.number for r in got if r.number != OTHER]
    assert numbers == list(range(len(numbers))), "recovered out of order or with gaps"
    assert set(publisher.confirmed) <= set(numbers), "confirmed messages lost"


@pytest.mark.timeout(120)
def test_disk_alarm_blocks_the_publisher_until_space_returns(small_disk: Path) -> None:
    # 3 MiB free, the limit at 4 MB: the alarm is on from the start.
    filler = small_disk / "filler"
    filler.write_bytes(bytes(29 * MiB))
    broker = BrokerProcess(small_disk / "data", env={"PIGEON_DISK_FREE_LIMIT": str(4 * MiB)})
    try:
        publisher, thread = fill_until_stalled(broker, size=1024)
        wait_for(lambda: publisher.events, "the publisher is told it is blocked")
        assert publisher.events == ["blocked: low on disk"], publisher.events
        assert "store write failed" not in broker.run_log(), "the store failed, not the alarm"
        free_space_and_finish(broker, publisher, thread, filler)
        assert publisher.events == ["blocked: low on disk", "unblocked"]
        nothing_confirmed_lost(broker, publisher)
    finally:
        broker.kill()
    broker.check_no_errors()


@pytest.mark.timeout(120)
def test_failing_store_holds_confirms_blocks_publishers_and_loses_nothing(
    small_disk: Path,
) -> None:
    # 5 MiB free and a limit of 64 KiB: the disk is full before the alarm can trip.
    filler = small_disk / "filler"
    filler.write_bytes(bytes(27 * MiB))
    broker = BrokerProcess(small_disk / "data", env={"PIGEON_DISK_FREE_LIMIT": str(64 * 1024)})
    try:
        publisher, thread = fill_until_stalled(broker, size=32 * 1024)
        wait_for(lambda: "store write failed" in broker.run_log(), "the store fails")
        held = len(publisher.confirmed)
        assert held * 32 * 1024 < 5 * MiB, "more was confirmed than the disk holds"
        # The failing store raised the disk alarm: whoever publishes now is blocked.
        wait_for(lambda: "disk alarm set" in broker.run_log(), "the disk alarm")
        other_events: list[str] = []
        other = connect(broker.url)
        watch_blocking(other, other_events)
        other.channel().basic_publish("", QUEUE, body_of(OTHER, 32 * 1024), PERSISTENT)
        wait_for(
            lambda: other.process_data_events(time_limit=0.01) or other_events,
            "a new publisher is blocked",
        )
        assert other_events == ["blocked: low on disk"], other_events
        assert len(publisher.confirmed) == held, "confirmed while the store was failing"
        free_space_and_finish(broker, publisher, thread, filler)
        # It was never told (it waited for a confirm, and did not publish while
        # the alarm was on), or it published once more in the second before the
        # alarm cleared and was blocked, then unblocked.
        assert publisher.events in ([], ["blocked: low on disk", "unblocked"]), publisher.events
        wait_for(
            lambda: other.process_data_events(time_limit=0.01) or len(other_events) == 2,
            "the new publisher is unblocked",
        )
        other.close()
        nothing_confirmed_lost(broker, publisher)
    finally:
        broker.kill()
    broker.check_no_errors()
