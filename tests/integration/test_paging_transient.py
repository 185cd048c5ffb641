"""Transient backlogs, priority and TTL queues page out too, with their semantics kept.

Each broker here has a data folder, a management listener (the paged counts are
read from ``/api/queues``, RabbitMQ's ``messages_paged_out``) and a small
``paging_memory`` in bytes, so that paging starts after a few thousand messages.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pytest
from helpers import process_until, wait_until
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.broker import Broker
from pigeon.config import Config, ConfigError, load

SIZE = 1024
BUDGET = 1_000_000  # paging_memory, bytes: about a thousand 1 KiB bodies
# What a paging queue keeps in memory at most, once it has paged: a head of up to
# PAGE_IN_BATCH (2,000) messages while over budget, and what arrives meanwhile.
IN_MEMORY_AT_MOST = 2_000 * SIZE + BUDGET


def get(broker: Broker, path: str) -> Any:
    assert broker.management_url is not None
    request = urllib.request.Request(broker.management_url.rstrip("/") + path)
    token = base64.b64encode(b"guest:guest").decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.headers.get_content_type() == "application/json":
            return json.load(response)
        return response.read().decode()


def queue_info(broker: Broker, name: str) -> dict[str, Any]:
    info: dict[str, Any] = get(broker, f"/api/queues/%2F/{quote(name, safe='')}")
    return info


def metric(broker: Broker, name: str) -> float:
    for line in get(broker, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path / "data",
        management_port=0,
        paging_memory=float(BUDGET),
    )
    with Broker.in_thread(config) as running:
        yield running


@pytest.fixture
def channel(broker: Broker) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    yield connection.channel()
    connection.close()


def body(number: int) -> bytes:
    return number.to_bytes(4, "big") + b"x" * (SIZE - 4)


def publish(channel: BlockingChannel, queue: str, count: int, **properties: Any) -> None:
    props = pika.BasicProperties(**properties)
    for number in range(count):
        channel.basic_publish("", queue, body(number), props)
    # A round trip: every publish before it has been routed.
    channel.queue_declare(queue, passive=True)


def consume(channel: BlockingChannel, queue: str, count: int) -> list[bytes]:
    channel.basic_qos(prefetch_count=500)
    received: list[bytes] = []
    for method, _props, data in channel.consume(queue, inactivity_timeout=10):
        assert method is not None, f"stalled after {len(received)}"
        received.append(data)
        if len(received) % 250 == 0 or len(received) == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if len(received) == count:
            break
    channel.cancel()
    return received


def numbers(bodies: list[bytes]) -> list[int]:
    return [int.from_bytes(data[:4], "big") for data in bodies]


@pytest.mark.parametrize("durable", [False, True])
def test_transient_backlog_stays_bounded_and_drains_in_order(
    broker: Broker, channel: BlockingChannel, durable: bool
) -> None:
    count = 20_000
    channel.queue_declare("transient-backlog", durable=durable)
    publish(channel, "transient-backlog", count)

    def paged() -> dict[str, Any] | None:
        info = queue_info(broker, "transient-backlog")
        return info if info["messages_paged_out"] >= count - 3_000 else None

    info = wait_until(paged, timeout=30, interval=0.1)
    assert info["messages"] == count
    assert info["message_bytes_ram"] <= IN_MEMORY_AT_MOST
    assert info["messages_ram"] == count - info["messages_paged_out"]
    assert metric(broker, "pigeon_paging_memory_used_bytes") <= IN_MEMORY_AT_MOST

    assert numbers(consume(channel, "transient-backlog", count)) == list(range(count))
    info = queue_info(broker, "transient-backlog")
    assert info["messages"] == 0 and info["messages_paged_out"] == 0


def test_mixed_backlog_reads_both_kinds_back_in_order_never_redelivered(
    broker: Broker, channel: BlockingChannel
) -> None:
    # Persistent messages page in from the store, transient ones from the pager; the
    # next batch of both is read ahead while the head delivers.
    count = 12_000
    channel.queue_declare("mixed-backlog", durable=True)
    kinds = [pika.BasicProperties(delivery_mode=mode) for mode in (1, 2)]
    for number in range(count):
        channel.basic_publish("", "mixed-backlog", body(number), kinds[number % 2])
    wait_until(
        lambda: queue_info(broker, "mixed-backlog")["messages_paged_out"] >= count - 3_000,
        timeout=30,
        interval=0.1,
    )
    channel.basic_qos(prefetch_count=500)
    received: list[tuple[int, bool, int | None]] = []
    for method, props, data in channel.consume("mixed-backlog", inactivity_timeout=10):
        assert method is not None, f"stalled after {len(received)}"
        received.append((int.from_bytes(data[:4], "big"), method.redelivered, props.delivery_mode))
        if len(received) % 250 == 0 or len(received) == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if len(received) == count:
            break
    channel.cancel()
    assert received == [(number, False, 1 + number % 2) for number in range(count)]
    assert queue_info(broker, "mixed-backlog")["messages_paged_out"] == 0


def test_default_settings_page_a_long_transient_backlog(tmp_path: Path) -> None:
    """Without memory pressure, a queue still pages past PAGE_AFTER messages in memory."""
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=0
    )
    count = 26_000
    with (
        Broker.in_thread(config) as broker,
        pika.BlockingConnection(pika.URLParameters(broker.amqp_url)) as connection,
    ):
        channel = connection.channel()
        channel.queue_declare("long-backlog")
        publish(channel, "long-backlog", count)
        wait_until(
            lambda: queue_info(broker, "long-backlog")["messages_paged_out"] >= 5_000,
            timeout=30,
            interval=0.1,
        )
        assert numbers(consume(channel, "long-backlog", count)) == list(range(count))


def test_purge_of_a_paged_backlog_counts_every_message(
    broker: Broker, channel: BlockingChannel
) -> None:
    channel.queue_declare("purged-backlog", durable=True)
    publish(channel, "purged-backlog", 6_000)
    persistent = pika.BasicProperties(delivery_mode=2)
    for number in range(6_000, 8_000):
        channel.basic_publish("", "purged-backlog", body(number), persistent)
    wait_until(
        lambda: queue_info(broker, "purged-backlog")["messages_paged_out"] > 4_000,
        timeout=30,
        interval=0.1,
    )
    assert channel.queue_purge("purged-backlog").method.message_count == 8_000
    publish(channel, "purged-backlog", 3_000)
    assert numbers(consume(channel, "purged-backlog", 3_000)) == list(range(3_000))


def test_priority_backlog_pages_and_keeps_priority_order(
    broker: Broker, channel: BlockingChannel
) -> None:
    count = 12_000
    channel.queue_declare("prio-backlog", arguments={"x-max-priority": 5})
    props = [pika.BasicProperties(priority=number % 6) for number in range(6)]
    for number in range(count):
        channel.basic_publish("", "prio-backlog", body(number), props[number % 6])
    channel.queue_declare("prio-backlog", passive=True)
    wait_until(
        lambda: queue_info(broker, "prio-backlog")["messages_paged_out"] > count // 2,
        timeout=30,
        interval=0.1,
    )

    received = numbers(consume(channel, "prio-backlog", count))
    # Highest priority first; publish order within each priority.
    expected = sorted(range(count), key=lambda number: (-(number % 6), number))
    assert received == expected


def test_paged_ttl_backlog_expires_on_time_in_order(
    broker: Broker, channel: BlockingChannel
) -> None:
    count = 10_000
    channel.queue_declare("ttl-dead")
    channel.queue_declare(
        "ttl-backlog",
        arguments={
            "x-message-ttl": 4_000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "ttl-dead",
        },
    )
    publish(channel, "ttl-backlog", count)
    wait_until(
        lambda: queue_info(broker, "ttl-backlog")["messages_paged_out"] > count // 2,
        timeout=3,
        interval=0.05,
    )
    # All of it expires once the TTL has passed, paged or not, and is dead-lettered in order.
    wait_until(lambda: queue_info(broker, "ttl-backlog")["messages"] == 0, timeout=15, interval=0.1)
    assert numbers(consume(channel, "ttl-dead", count)) == list(range(count))


def test_paged_messages_expire_as_the_head_reaches_them(
    broker: Broker, channel: BlockingChannel
) -> None:
    """Per-message expiration: the expired head goes, paged part included, not the rest."""
    channel.queue_declare("expiring-backlog")
    publish(channel, "expiring-backlog", 4_000, expiration="500")
    publish(channel, "expiring-backlog", 8_000)
    info = wait_until(
        lambda: (info := queue_info(broker, "expiring-backlog"))["messages"] == 8_000 and info,
        timeout=10,
        interval=0.05,
    )
    assert info["messages_paged_out"] > 4_000
    assert numbers(consume(channel, "expiring-backlog", 8_000)) == list(range(8_000))


def test_fast_publisher_is_paused_not_blocked(broker: Broker) -> None:
    """Flow control before any alarm: the publisher waits for the pager, unaware."""
    publisher = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    blocked: list[str] = []
    publisher.add_on_connection_blocked_callback(
        lambda _conn, frame: blocked.append(frame.method.reason)
    )
    consumer = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        out = publisher.channel()
        out.queue_declare("slow-consumer")
        inbox = consumer.channel()
        inbox.basic_qos(prefetch_count=10)
        got: list[bytes] = []

        def slow(ch: BlockingChannel, method: Any, _props: Any, data: bytes) -> None:
            got.append(data)
            ch.basic_ack(method.delivery_tag)

        inbox.basic_consume("slow-consumer", slow)
        count = 15_000
        publish(out, "slow-consumer", count)
        assert metric(broker, "pigeon_paging_flow_pauses_total") > 0
        assert metric(broker, "pigeon_paging_memory_used_bytes") <= IN_MEMORY_AT_MOST
        assert not get(broker, "/api/nodes")[0]["mem_alarm"]
        process_until(consumer, lambda: len(got) == count, timeout=60)
        assert numbers(got) == list(range(count))
        publisher.process_data_events(time_limit=0)
        assert blocked == []
    finally:
        publisher.close()
        consumer.close()


def test_paging_memory_setting_is_checked() -> None:
    with pytest.raises(ConfigError, match="paging_memory must be above 0"):
        Config(paging_memory=0.0)
    assert load(environ={"PIGEON_PAGING_MEMORY": "3000000"}).paging_memory == 3_000_000


@pytest.mark.parametrize(
    ("paging_memory", "expected"),
    [
        # The default fraction of the alarm's limit: at most 256 MiB (with 10 GiB as the
        # alarm's limit, half would be 5 GiB, a transient backlog held in memory).
        (0.5, 256 * 1024 * 1024),
        # Small machines: the fraction itself, RabbitMQ's paging ratio.
        (0.01, 0.01 * 10 * 1024**3),
        # Bytes are taken as given, above the cap too.
        (1_000_000_000.0, 1_000_000_000),
    ],
)
def test_paging_limit_is_a_capped_fraction_or_bytes(
    tmp_path: Path, paging_memory: float, expected: float
) -> None:
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path / "data",
        management_port=0,
        memory_high_watermark=float(10 * 1024**3),
        paging_memory=paging_memory,
    )
    with Broker.in_thread(config) as broker:
        assert metric(broker, "pigeon_paging_memory_limit_bytes") == int(expected)
