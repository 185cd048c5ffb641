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
def test_transient_pages_are_gone_after_a_restart(tmp_path: Path, make_broker: MakeBroker,
                                                  ending: str) -> None:
    data_dir = tmp_path / "data"
    broker = make_broker(data_dir, env={"PIGEON_PAGING_MEMORY": "2000000"})
    broker.start()
    before = resident_bytes(broker.pid)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare("mixed", durable=True)
    transient, persistent = pika.BasicProperties(), pika.BasicProperties(delivery_mode=2)
    padding = b"x" * (SIZE - 4)
    for number in range(COUNT):
        channel.basic_publish("", "mixed", number.to_bytes(4, "big") + padding,
                              persistent if number % EVERY == 0 else transient)
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

    connection.close()
    broker.kill() if ending == "kill" else broker.stop()
    if ending == "stop":
        assert paged_bytes(data_dir) == 0, "a clean stop deletes the pages"
    broker.start()
    # A fresh, empty file (its schema only): the last run's pages are deleted at start.
    assert paged_bytes(data_dir) < 100_000
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
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
    connection.close()
