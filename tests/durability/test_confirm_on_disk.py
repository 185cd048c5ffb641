"""A publisher confirm never goes out before its message is on disk (issue 13, part 4).

The disk is "stalled" from outside: a second SQLite connection holds the database's
write lock, so the broker's writer cannot commit anything. A persistent message
published with confirms to a durable queue must then stay unconfirmed, whatever
else the broker does in the same loop turn; once the lock is released, the commit
goes through and the confirm follows.

The interleaving that once confirmed early: a publish that makes its queue start
(or keep) paging its backlog out asks the store for a barrier in the same turn as
the publish, and the barrier used to clear the store's shared "dirty" flag, so the
turn's confirm saw nothing left to wait for. Below the paging threshold the
confirm always waited; the cases at and past it are the ones that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.core.paging import PAGE_AFTER

# How long a confirm may take to (wrongly) arrive while the disk is stalled. An
# early confirm arrived within ~1 ms; the right one waits until the lock is gone.
STALL = 0.5


@contextlib.contextmanager
def stalled_disk(database: Path) -> Iterator[None]:
    """Hold the database's write lock: no transaction of the broker can commit."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def fill(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    """``count`` persistent messages, published without confirms."""
    for n in range(count):
        await channel.default_exchange.publish(
            aio_pika.Message(n.to_bytes(4, "big"), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            queue,
        )


@pytest.mark.parametrize(
    "backlog",
    [PAGE_AFTER - 1_000, PAGE_AFTER, PAGE_AFTER + 5_000],
    ids=["below-paging", "starts-paging", "already-paging"],
)
async def test_confirm_waits_for_the_disk(tmp_path: Path, backlog: int) -> None:
    data = tmp_path / "data"
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=data, management_port=None)
    async with Broker(config) as broker:
        connection = await aio_pika.connect(broker.amqp_url)
        async with connection:
            bulk = await connection.channel(publisher_confirms=False)
            await bulk.declare_queue("orders", durable=True)
            await bulk.declare_queue("marker", durable=True)
            await fill(bulk, "orders", backlog)
            # A confirmed marker after them: its confirm covers every write before it,
            # so the backlog is on disk before the disk stalls.
            confirming = await connection.channel()  # publisher confirms on
            persistent = aio_pika.DeliveryMode.PERSISTENT
            await confirming.default_exchange.publish(
                aio_pika.Message(b"marker", delivery_mode=persistent), "marker"
            )

            with stalled_disk(data / "pigeon.db"):
                publish = asyncio.ensure_future(
                    confirming.default_exchange.publish(
                        aio_pika.Message(b"the one", delivery_mode=persistent), "orders"
                    )
                )
                done, _ = await asyncio.wait({publish}, timeout=STALL)
                assert not done, (
                    f"message {backlog + 1} was confirmed while nothing could be committed"
                )
            # The writer commits once the lock is gone; then the confirm comes.
            await asyncio.wait_for(publish, timeout=30)
            queue = await bulk.declare_queue("orders", passive=True)
            assert queue.declaration_result.message_count == backlog + 1


async def test_transient_paging_neither_delays_nor_frees_a_confirm(tmp_path: Path) -> None:
    """Transient messages paged out while the disk is stalled: the pager's writes (a file
    of their own, never synced) confirm nothing early and hold no confirm back."""
    data = tmp_path / "data"
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=data,
        management_port=None,
        paging_memory=1_000_000.0,
    )
    async with Broker(config) as broker:
        connection = await aio_pika.connect(broker.amqp_url)
        async with connection:
            channel = await connection.channel()  # publisher confirms on
            await channel.declare_queue("events", durable=True)
            exchange = channel.default_exchange
            persistent_mode = aio_pika.DeliveryMode.PERSISTENT
            # Confirmed: everything before it (the declare) is on disk before the stall.
            await exchange.publish(
                aio_pika.Message(b"first", delivery_mode=persistent_mode), "events"
            )
            body = b"x" * 1024
            with stalled_disk(data / "pigeon.db"):
                # 6,000 KiB of transient messages: past paging_memory, so paged out; each
                # confirmed at once, the store's commits stalled or not.
                confirms = asyncio.gather(
                    *(exchange.publish(aio_pika.Message(body), "events") for _ in range(6_000))
                )
                await asyncio.wait_for(confirms, timeout=30)
                for _ in range(200):  # the pager writes on its own thread
                    if sum(path.stat().st_size for path in data.glob("pages.db*")) > 3_000_000:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the backlog was not paged out")
                # A persistent one in the same paging queue still waits for the disk.
                persistent = asyncio.ensure_future(
                    exchange.publish(
                        aio_pika.Message(b"kept", delivery_mode=persistent_mode), "events"
                    )
                )
                done, _ = await asyncio.wait({persistent}, timeout=STALL)
                assert not done, "confirmed while nothing could be committed"
            await asyncio.wait_for(persistent, timeout=30)
            queue = await channel.declare_queue("events", passive=True)
            assert queue.declaration_result.message_count == 6_002
