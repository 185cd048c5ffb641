"""Replies held for the disk: what waits, what does not, and the order on a channel.

The disk is stalled from outside (a second SQLite connection holds the write lock,
see test_confirm_on_disk), so nothing the broker writes can commit. Then:

- a durable declare's -ok does not come, nor anything sent after it on the same
  channel (a later qos-ok, a transient declare's -ok): they follow it, in order,
  once the disk is back;
- a transient declare on another connection is answered at once;
- tx.commit-ok of a transaction that stored a persistent message waits;
- the management API and the embedded API answer a durable change only after it.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from pigeon.broker import Broker
from pigeon.config import Config

from .pipeline import Pipeline
from .test_confirm_on_disk import STALL, stalled_disk


def nothing_arrives(client: Pipeline, seconds: float = STALL) -> bool:
    client.sock.settimeout(seconds)
    try:
        data = client.sock.recv(1 << 16)
    except TimeoutError:
        return True
    client.buffer += data
    return False


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    with Broker.in_thread(config) as running:
        yield running


def test_a_held_reply_keeps_its_channel_in_order(broker: Broker, tmp_path: Path) -> None:
    with Pipeline(broker.amqp_port) as client, Pipeline(broker.amqp_port) as other:
        with stalled_disk(tmp_path / "data" / "pigeon.db"):
            client.send_all(
                [
                    commands.Queue.Declare(queue="held", durable=True),
                    commands.Basic.Qos(prefetch_count=5),
                    commands.Queue.Declare(queue="transient-behind", durable=False),
                ]
            ).join()
            other.send_now(1, commands.Queue.Declare(queue="transient-elsewhere"))
            other.expect(commands.Queue.DeclareOk)  # not held: another channel
            assert nothing_arrives(client), "a reply went out before the declare was on disk"
        first = client.expect(commands.Queue.DeclareOk)
        assert first.queue == "held"
        client.expect(commands.Basic.QosOk)
        assert client.expect(commands.Queue.DeclareOk).queue == "transient-behind"


def test_transient_declares_do_not_wait(broker: Broker, tmp_path: Path) -> None:
    with (
        Pipeline(broker.amqp_port) as client,
        Pipeline(broker.amqp_port) as other,
        stalled_disk(tmp_path / "data" / "pigeon.db"),
    ):
        # A write that cannot commit: transient changes do not wait for it either.
        other.send_now(1, commands.Queue.Declare(queue="pending", durable=True))
        assert nothing_arrives(other)
        client.send_now(1, commands.Exchange.Declare(exchange="t-x", exchange_type="fanout"))
        client.expect(commands.Exchange.DeclareOk)
        client.send_now(1, commands.Queue.Declare(queue="t-q"))
        client.expect(commands.Queue.DeclareOk)
        client.send_now(1, commands.Queue.Bind(queue="t-q", exchange="t-x"))
        client.expect(commands.Queue.BindOk)


def test_tx_commit_ok_waits_for_the_disk(broker: Broker, tmp_path: Path) -> None:
    with Pipeline(broker.amqp_port) as client:
        client.send_now(1, commands.Queue.Declare(queue="tx", durable=True))
        client.expect(commands.Queue.DeclareOk)
        client.send_now(1, commands.Tx.Select())
        client.expect(commands.Tx.SelectOk)
        with stalled_disk(tmp_path / "data" / "pigeon.db"):
            client.send_all(
                [
                    commands.Basic.Publish(exchange="", routing_key="tx"),
                    ContentHeader(0, 3, commands.Basic.Properties(delivery_mode=2)),
                    ContentBody(b"one"),
                    commands.Tx.Commit(),
                ]
            ).join()
            assert nothing_arrives(client), "tx.commit-ok before the message was on disk"
        client.expect(commands.Tx.CommitOk)


async def test_management_and_embedded_changes_answer_once_on_disk(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=data, management_port=0)
    async with Broker(config) as broker:
        assert broker.management is not None
        port = broker.management.port
        with stalled_disk(data / "pigeon.db"):
            embedded = asyncio.ensure_future(broker.declare_queue("embedded", durable=True))
            http = asyncio.ensure_future(asyncio.to_thread(put_queue, port, "over-http"))
            done, _ = await asyncio.wait({embedded, http}, timeout=STALL)
            assert not done, "a change was answered while nothing could be committed"
        assert await asyncio.wait_for(embedded, 30) == "embedded"
        assert await asyncio.wait_for(http, 30) == 201


def put_queue(port: int, name: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/queues/%2F/{name}",
        data=b'{"durable": true}',
        method="PUT",
        headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(answer.status)
