"""Transient messages paged out to disk stay in memory's stead, and never come back.

A broker child process with a small ``paging_memory`` takes a durable queue's
backlog of transient messages with a few persistent ones among them: its resident
memory stays far below the backlog's size (read from /proc, as ``ps`` would); after
a SIGKILL or a clean stop, only the persistent messages are there again, in order.
"""

from __future__ import annotations

import time
from pathlib import Path

import pika
import pytest

from .conftest import MakeBroker

SIZE = 4096
COUNT = 25_000  # ~100 MB of bodies
EVERY = 10  # every tenth message is persistent


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def paged_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in data_dir.glob("pages.db*"))


@pytest.mark.parametrize("ending", ["kill", "stop"])
def test_transient_pages_are_gone_after_a_restart(
    tmp_path: Path, make_broker: MakeBroker, ending: str
) -> None:
    data_dir = tmp_path / "data"
    broker = make_broker(data_dir, env={"PIGEON_PAGING_MEMORY": "2000000"})
    broker.start()
    before = resident_bytes(broker.pid)
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as connection:
        channel = connection.channel()
        channel.queue_declare("mixed", durable=True)
        transient, persistent = pika.BasicProperties(), pika.BasicProperties(delivery_mode=2)
        padding = b"x" * (SIZE - 4)
        for number in range(COUNT):
            channel.basic_publish(
                "",
                "mixed",
                number.to_bytes(4, "big") + padding,
                persistent if number % EVERY == 0 else transient,
            )
        # A confirmed publish after them: the store has every persistent one on disk.
        channel.confirm_delivery()
        channel.basic_publish("", "mixed", b"end", persistent)
        assert channel.queue_declare("mixed", passive=True).method.message_count == COUNT + 1

        deadline = time.monotonic() + 30
        while paged_bytes(data_dir) < COUNT * SIZE // 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert paged_bytes(data_dir) >= COUNT * SIZE // 2, "the transient backlog was paged out"
        # What the broker holds once the backlog is on disk (freed memory is handed back to
        # the system by the resource monitor, once a second).
        deadline = time.monotonic() + 10
        while (grown := resident_bytes(broker.pid) - before) > COUNT * SIZE // 4:
            assert time.monotonic() < deadline, f"resident memory grew by {grown} bytes"
            time.sleep(0.1)

    broker.kill() if ending == "kill" else broker.stop()
    if ending == "stop":
        assert paged_bytes(data_dir) == 0, "a clean stop deletes the pages"
    broker.start()
    # A fresh, empty file (its schema only): the last run's pages are deleted at start.
    assert paged_bytes(data_dir) < 100_000
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as connection:
        channel = connection.channel()
        kept = [number for number in range(COUNT) if number % EVERY == 0]
        assert channel.queue_declare("mixed", passive=True).method.message_count == len(kept) + 1
        received = []
        for _ in range(len(kept)):
            method, _props, body = channel.basic_get("mixed", auto_ack=True)
            assert method is not None
            received.append(int.from_bytes(body[:4], "big"))
        assert received == kept
        method, _props, body = channel.basic_get("mixed", auto_ack=True)
        assert method is not None and body == b"end"


def test_memory_alarm_clears_once_the_backlog_is_paged(
    tmp_path: Path, make_broker: MakeBroker
) -> None:
    """With paging left to the alarm (a huge ``paging_memory``), a transient backlog
    raises the memory alarm; queues then page out, and the alarm clears by itself while
    the backlog is still there (RabbitMQ unblocks the same way)."""
    data_dir = tmp_path / "data"
    probe = make_broker(data_dir)
    probe.start()
    idle = resident_bytes(probe.pid)
    probe.stop()
    size, most = 8192, 19_000  # up to ~155 MB of bodies, below PAGE_AFTER messages
    limit = idle + 40_000_000
    broker = make_broker(
        data_dir,
        env={"PIGEON_PAGING_MEMORY": str(10**12), "PIGEON_MEMORY_HIGH_WATERMARK": str(limit)},
    )
    broker.start()
    events: list[str] = []
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        connection.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
        connection.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
        channel = connection.channel()
        channel.queue_declare("alarming")
        padding = b"x" * (size - 4)
        count = 0
        while "blocked" not in events:
            assert count < most, "the memory alarm never came"
            if resident_bytes(broker.pid) > limit:
                # The resource monitor checks once a second: a fast publisher could send
                # all of ``most`` in between two checks. The next batch is blocked.
                connection.process_data_events(time_limit=1.5)
            for number in range(count, count + 500):
                channel.basic_publish("", "alarming", number.to_bytes(4, "big") + padding)
            count += 500
            # A round trip; a blocked connection is not read at all, so this returns
            # once the alarm has cleared.
            assert channel.queue_declare("alarming", passive=True).method.message_count == count
            connection.process_data_events(time_limit=0)  # (pika calls back from here)
        assert events[:2] == ["blocked", "unblocked"], "the alarm came, and went"
        # Once the backlog is on disk, the broker is below the limit (so the alarm is off:
        # a publish after it is read, its round trip answered, no connection.blocked).
        deadline = time.monotonic() + 20
        while resident_bytes(broker.pid) >= limit:
            assert time.monotonic() < deadline, "memory stays above the alarm's limit"
            connection.process_data_events(time_limit=0.1)
        connection.process_data_events(time_limit=1.5)  # a check of the resource monitor
        channel.basic_publish("", "alarming", count.to_bytes(4, "big") + padding)
        assert channel.queue_declare("alarming", passive=True).method.message_count == count + 1
        connection.process_data_events(time_limit=0)
        assert events.count("blocked") == events.count("unblocked"), events
        assert paged_bytes(data_dir) > count * size // 3, "the backlog went to disk"
        channel.basic_qos(prefetch_count=500)
        received = []
        for method, _props, body in channel.consume("alarming", inactivity_timeout=10):
            assert method is not None
            received.append(int.from_bytes(body[:4], "big"))
            channel.basic_ack(method.delivery_tag)
            if len(received) == count + 1:
                break
        assert received == list(range(count + 1))
    finally:
        connection.close()
