"""Publishes that arrive together: one write holding many basic.publish frames.

The broker routes a run of plain publishes (same exchange and routing key, no headers,
no expiration) in one step; these tests send mixed runs in a single write, as a busy
client does, and check what every client relies on: each message reaches the right
queues in order, confirms cover every publish in order, and a refused publish in the
middle of a run lets the ones before it through and none after it. They pass against
RabbitMQ too (PIGEON_TEST_AMQP_URL).
"""

from __future__ import annotations

from typing import Any

import pamqp.frame
import pika
import pytest
from helpers import RawClient, credentials
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

pytestmark = pytest.mark.rabbitmq


def publish_frames(channel: int, routing_key: str, body: bytes, **properties: Any) -> bytes:
    frames = (
        commands.Basic.Publish(exchange="", routing_key=routing_key),
        ContentHeader(0, len(body), commands.Basic.Properties(**properties)),
        ContentBody(body),
    )
    return b"".join(pamqp.frame.marshal(frame, channel) for frame in frames)


def open_channel(raw: RawClient, number: int) -> None:
    raw.send(number, commands.Channel.Open())
    raw.expect(commands.Channel.OpenOk)


def connect(amqp_url: str) -> RawClient:
    raw = RawClient(amqp_url)
    raw.handshake(*credentials(amqp_url))
    raw.expect(commands.Connection.OpenOk)
    open_channel(raw, 1)
    return raw


def declare(raw: RawClient, channel: int, name: str) -> None:
    raw.send(channel, commands.Queue.Declare(queue=name, auto_delete=False))
    raw.expect(commands.Queue.DeclareOk)


def get_all(raw: RawClient, channel: int, queue: str) -> list[bytes]:
    bodies = []
    while True:
        raw.send(channel, commands.Basic.Get(queue=queue, no_ack=True))
        answer = raw.expect(commands.Basic.GetOk, commands.Basic.GetEmpty)
        if isinstance(answer, commands.Basic.GetEmpty):
            return bodies
        header = raw.expect(ContentHeader)
        body = b""
        while len(body) < header.body_size:
            body += raw.expect(ContentBody).value
        bodies.append(body)


def delete(raw: RawClient, channel: int, *queues: str) -> None:
    for queue in queues:
        raw.send(channel, commands.Queue.Delete(queue=queue))
        raw.expect(commands.Queue.DeleteOk)


def test_a_mixed_run_is_routed_and_confirmed_in_order(amqp_url: str, uid: str) -> None:
    qa, qb = f"run-a-{uid}", f"run-b-{uid}"
    expected: dict[str, list[bytes]] = {qa: [], qb: []}
    burst = []
    count = 120
    for index in range(count):
        # Runs of two broken by the other queue, then one long run to qa.
        queue = qb if index % 3 == 2 and index < 90 else qa
        properties: dict[str, Any] = {}
        if index % 10 == 0:
            properties["headers"] = {"n": index}  # not plain: routed on its own
        if index % 7 == 0:
            properties["expiration"] = "60000"
        body = b"%d" % index
        burst.append(publish_frames(1, queue, body, **properties))
        expected[queue].append(body)
    with connect(amqp_url) as raw:
        declare(raw, 1, qa)
        declare(raw, 1, qb)
        raw.send(1, commands.Confirm.Select())
        raw.expect(commands.Confirm.SelectOk)
        raw.sock.sendall(b"".join(burst))  # one write: the broker sees runs
        # Every publish confirmed exactly once (RabbitMQ may confirm messages to
        # different queues out of order; a multiple ack covers every earlier tag).
        waiting = set(range(1, count + 1))
        while waiting:
            ack = raw.expect(commands.Basic.Ack)
            if ack.multiple:
                covered = {tag for tag in waiting if tag <= ack.delivery_tag}
            else:
                assert ack.delivery_tag in waiting, f"tag {ack.delivery_tag} acked twice"
                covered = {ack.delivery_tag}
            waiting -= covered
        assert get_all(raw, 1, qa) == expected[qa]
        assert get_all(raw, 1, qb) == expected[qb]
        delete(raw, 1, qa, qb)


def test_a_refused_publish_stops_its_run(amqp_url: str, uid: str) -> None:
    queue = f"run-refused-{uid}"
    burst = [publish_frames(1, queue, b"%d" % index) for index in range(5)]
    burst.append(publish_frames(1, queue, b"bad", expiration="soon"))  # 406 in RabbitMQ
    burst += [publish_frames(1, queue, b"%d" % index) for index in range(6, 10)]
    with connect(amqp_url) as raw:
        declare(raw, 1, queue)
        raw.sock.sendall(b"".join(burst))
        close = raw.expect(commands.Channel.Close)
        assert close.reply_code == 406
        raw.send(1, commands.Channel.CloseOk())
        open_channel(raw, 2)
        assert get_all(raw, 2, queue) == [b"0", b"1", b"2", b"3", b"4"]
        delete(raw, 2, queue)


def test_properties_that_change_from_publish_to_publish_stay_with_their_message(
    amqp_url: str, uid: str
) -> None:
    # The channel remembers the last publish's converted properties by the bytes they
    # came in: a message must never get its neighbour's properties.
    queue = f"props-{uid}"
    kinds = [
        pika.BasicProperties(content_type="a", correlation_id="1"),
        pika.BasicProperties(content_type="b", delivery_mode=2),
        pika.BasicProperties(content_type="a", correlation_id="1"),
        pika.BasicProperties(),
        pika.BasicProperties(content_type="a", correlation_id="1"),
    ]
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        for index, properties in enumerate(kinds * 3):
            channel.basic_publish("", queue, str(index).encode(), properties)
        seen = []
        for _ in range(len(kinds) * 3):
            _, properties, body = channel.basic_get(queue, auto_ack=True)
            assert properties is not None
            seen.append(
                (body, properties.content_type, properties.correlation_id, properties.delivery_mode)
            )
    expected = [
        (str(index).encode(), p.content_type, p.correlation_id, p.delivery_mode)
        for index, p in enumerate(kinds * 3)
    ]
    assert seen == expected
