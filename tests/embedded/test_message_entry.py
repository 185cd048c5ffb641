"""A message entering through the embedded or HTTP API reaches an AMQP consumer whole.

Issue 12's reproductions: a 300-byte correlation id or a priority of 300, once
accepted, failed at delivery (541 to the consumer, or never delivered). The embedded
API refuses them at publish (sync and async); the HTTP API answers as RabbitMQ does
(tests/admin/test_api.py). Whatever the broker accepted, a pika consumer gets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pika
import pytest

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.errors import PreconditionFailed

EVERY = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "headers": {"s": "text", "n": 7, "big": 2**40, "b": b"\x00\xff",
                "d": Decimal("1.25"), "t": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                "none": None, "yes": True, "list": [1, "two"], "table": {"k": "v"}},
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "expiration": "60000",
    "message_id": "id-1",
    "timestamp": 1_700_000_000,
    "type": "kind",
    "user_id": "guest",
    "app_id": "tests",
}  # fmt: skip
REFUSED = [({"correlation_id": "x" * 300}, "longer than 255 bytes"),
           ({"priority": 300}, "from 0 to 255")]  # fmt: skip


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=0
    )
    with Broker.in_thread(config) as running:
        yield running


@pytest.fixture
def channel(broker: Broker) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


@pytest.fixture
def queue(broker: Broker) -> str:
    name = f"entry-{uuid.uuid4().hex[:10]}"
    broker.sync.declare_queue(name)
    return name


def http_publish(broker: Broker, queue: str, body: dict[str, Any]) -> Any:
    token = base64.b64encode(b"guest:guest").decode()
    request = urllib.request.Request(
        f"{str(broker.management_url).rstrip('/')}/api/exchanges/%2F/amq.default/publish",
        data=json.dumps({"routing_key": queue, "payload_encoding": "string", **body}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.mark.parametrize(("properties", "reason"), REFUSED)
def test_sync_publish_refuses_what_it_cannot_deliver(
    broker: Broker, channel: Any, queue: str, properties: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PreconditionFailed, match=reason):
        broker.sync.publish("", queue, b"never", **properties)
    broker.sync.publish("", queue, b"after")
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"after" and method.message_count == 0


@pytest.mark.parametrize(("properties", "reason"), REFUSED)
def test_async_publish_refuses_what_it_cannot_deliver(
    broker: Broker, channel: Any, queue: str, properties: dict[str, Any], reason: str
) -> None:
    # The coroutine API awaits the broker's loop from any other loop.
    with pytest.raises(PreconditionFailed, match=reason):
        asyncio.run(broker.publish("", queue, b"never", **properties))
    asyncio.run(broker.publish("", queue, b"after"))
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"after" and method.message_count == 0


def test_every_property_from_the_embedded_api_reaches_pika(
    broker: Broker, channel: Any, queue: str
) -> None:
    broker.sync.publish("", queue, b"embedded", **EVERY)
    method, got, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"embedded"
    for name, value in EVERY.items():
        assert getattr(got, name) == value, name


def test_every_property_from_the_http_api_reaches_pika(
    broker: Broker, channel: Any, queue: str
) -> None:
    sent = {**EVERY, "headers": {"s": "text", "n": 7, "none": None, "yes": True,
                                 "list": [1, "two"], "table": {"k": "v"}}}  # fmt: skip
    assert http_publish(broker, queue, {"payload": "http", "properties": sent}) == {"routed": True}
    method, got, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"http"
    for name, value in sent.items():
        assert getattr(got, name) == value, name
