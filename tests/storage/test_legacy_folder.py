"""A data folder written by Pigeon 0.1 opens with today's code and serves everything in it.

The folder (``fixtures/pigeon-0.1/``) was made once by ``legacy_folder.py`` on the 0.1
source and is never rewritten: when the on-disk format changes, this test says
whether old folders still open, migrate and serve their messages.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import legacy_folder as legacy
import pika
import pytest

from pigeon.broker import Broker
from pigeon.config import Config

FIXTURE = Path(__file__).parent / "fixtures" / "pigeon-0.1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data, ignore=shutil.ignore_patterns("README.md"))
    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=data, management_port=0)
    ) as running:
        yield running


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> Any:
        token = base64.b64encode(b"guest:guest").decode()
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())


def expected_properties(properties: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in properties.items() if value is not None}


def properties_of(received: pika.BasicProperties) -> dict[str, Any]:
    names = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
             "correlation_id", "reply_to", "message_id", "timestamp", "type", "user_id",
             "app_id")  # fmt: skip
    return {name: getattr(received, name) for name in names if getattr(received, name) is not None}


def drain(channel: Any, queue: str) -> list[tuple[bytes, dict[str, Any], bool]]:
    got = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((body, properties_of(properties), method.redelivered))


def test_definitions_come_back(broker: Broker) -> None:
    assert broker.management_url is not None
    api = Api(broker.management_url.rstrip("/"))
    assert legacy.VHOST in {v["name"] for v in api.get("/api/vhosts")}
    user = api.get(f"/api/users/{legacy.USER}")
    assert user["tags"] in (legacy.TAGS, ",".join(legacy.TAGS))
    permission = api.get(f"/api/permissions/{legacy.VHOST}/{legacy.USER}")
    assert (permission["configure"], permission["write"], permission["read"]) == (".*",) * 3
    [topic] = api.get(f"/api/topic-permissions/{legacy.VHOST}/{legacy.USER}")
    assert (topic["exchange"], topic["write"], topic["read"]) == ("orders", "^eu\\.", ".*")

    exchanges = {e["name"]: e for e in api.get(f"/api/exchanges/{legacy.VHOST}")}
    for exchange in legacy.EXCHANGES:
        found = exchanges[exchange["name"]]
        assert (found["type"], found["durable"]) == (exchange["type"], True)
        assert found["arguments"] == exchange["arguments"]
    queues = {q["name"]: q for q in api.get(f"/api/queues/{legacy.VHOST}")}
    for queue in legacy.QUEUES:
        assert queues[queue["name"]]["durable"] is True
        assert queues[queue["name"]]["arguments"] == queue["arguments"]
    bindings = {
        (b["source"], b["destination"], b["destination_type"], b["routing_key"]): b["arguments"]
        for b in api.get(f"/api/bindings/{legacy.VHOST}")
        if b["source"]
    }
    assert bindings == {(s, d, kind, key): args for s, d, kind, key, args in legacy.BINDINGS}


def test_messages_come_back_in_order_and_intact(broker: Broker) -> None:
    # The user logs in with its 0.1 password hash.
    connection = pika.BlockingConnection(pika.URLParameters(legacy.amqp_url(broker.amqp_port)))
    channel = connection.channel()
    want: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
    for queue, body, properties in legacy.MESSAGES:
        want.setdefault(queue, []).append((body, expected_properties(properties)))
    # A priority queue hands out the highest priority first, FIFO within one.
    want["jobs"].sort(key=lambda message: -message[1]["priority"])

    for queue, messages in want.items():
        got = drain(channel, queue)
        assert [(body, props) for body, props, _ in got] == messages, queue
        # The deliveries held at shutdown must say redelivered (0.1 marks every
        # recovered message so: "possibly delivered before", which the flag allows).
        held = legacy.UNACKED if queue == "orders.eu" else 0
        assert all(flag for _, _, flag in got[:held]), queue
    # Routing through the recovered topology works as before: broadcast -> orders (an
    # exchange-to-exchange binding) -> orders.eu by the topic binding.
    channel.confirm_delivery()
    channel.basic_publish("broadcast", "eu.it", b"after", pika.BasicProperties(delivery_mode=2))
    assert [body for body, _, _ in drain(channel, "orders.eu")] == [b"after"]
    connection.close()
