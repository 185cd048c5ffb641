"""Policies, limits and parameters survive a restart and travel in definitions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
import pytest
from admin_helpers import Api
from pika.exceptions import ChannelClosedByBroker

from pigeon.broker import Broker
from pigeon.config import Config

SETTINGS: list[tuple[str, Any]] = [
    (
        "/api/policies/%2F/trim",
        {
            "pattern": "^kept$",
            "apply-to": "queues",
            "priority": 2,
            "definition": {"max-length": 2, "queue-mode": "lazy"},
        },
    ),
    (
        "/api/policies/%2F/ae",
        {
            "pattern": "^orders$",
            "apply-to": "exchanges",
            "definition": {"alternate-exchange": "unrouted"},
        },
    ),
    ("/api/operator-policies/%2F/cap", {"pattern": ".*", "definition": {"expires": 3600000}}),
    ("/api/vhost-limits/%2F/max-queues", {"value": 4}),
    ("/api/user-limits/guest/max-channels", {"value": 50}),
    ("/api/parameters/federation-upstream/%2F/up", {"value": {"uri": "amqp://127.0.0.1"}}),
    ("/api/global-parameters/cluster_name", {"value": "rabbit-east"}),
]
LISTS = (
    "/api/policies",
    "/api/operator-policies",
    "/api/vhost-limits",
    "/api/user-limits",
    "/api/parameters",
    "/api/global-parameters",
)


@contextmanager
def running(data_dir: Path | None) -> Iterator[tuple[Broker, Api]]:
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=data_dir, management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        yield broker, Api(broker.management_url.rstrip("/"))


def _configure(api: Api) -> None:
    for path, body in SETTINGS:
        answer = api.request("PUT", path, body)
        assert answer.status in (201, 204), (path, answer.status, answer.body)


def _lists(api: Api) -> dict[str, Any]:
    return {path: api.get(path) for path in LISTS}


def _fill(broker: Broker, count: int) -> pika.BlockingConnection:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.exchange_declare("orders", "direct", durable=True)
    channel.exchange_declare("unrouted", "fanout", durable=True)
    channel.queue_declare("kept", durable=True)
    channel.queue_bind("kept", "unrouted")
    for number in range(count):
        channel.basic_publish(
            "orders", "nobody", str(number).encode(), pika.BasicProperties(delivery_mode=2)
        )
    return connection


def test_settings_survive_a_restart(tmp_path: Path) -> None:
    with running(tmp_path / "data") as (broker, api):
        _configure(api)
        before = _lists(api)
        _fill(broker, 3).close()
        assert api.get("/api/queues/%2F/kept")["messages"] == 2
    with running(tmp_path / "data") as (broker, api):
        assert _lists(api) == before
        assert api.get("/api/overview")["cluster_name"] == "rabbit-east"
        queue = api.get("/api/queues/%2F/kept")
        assert (queue["policy"], queue["operator_policy"]) == ("trim", "cap")
        assert queue["effective_policy_definition"] == {
            "expires": 3600000,
            "max-length": 2,
            "queue-mode": "lazy",
        }
        # The policies still act: through the alternate exchange, trimmed to two.
        connection = _fill(broker, 2)
        assert api.get("/api/queues/%2F/kept")["messages"] == 2
        channel = connection.channel()
        for name in ("a", "b"):
            channel.queue_declare(name)
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.queue_declare("c")  # kept, a, b and c fill the limit of 4: d is refused
            channel.queue_declare("d")
        assert refused.value.reply_code == 406
        connection.close()
        for path, _ in SETTINGS[:3]:
            assert api.request("DELETE", path).status == 204
    with running(tmp_path / "data") as (_, api):
        assert api.get("/api/policies") == [] and api.get("/api/operator-policies") == []
        assert api.get("/api/queues/%2F/kept")["policy"] is None


def test_definitions_round_trip() -> None:
    with running(None) as (_, api):
        _configure(api)
        exported = api.get("/api/definitions")
        before = _lists(api)
    assert {
        "vhost": "/",
        "name": "trim",
        "pattern": "^kept$",
        "apply-to": "queues",
        "definition": {"max-length": 2, "queue-mode": "lazy"},
        "priority": 2,
    } in exported["policies"]
    assert {
        "value": {"max-queues": 4},
        "vhost": "/",
        "component": "vhost-limits",
        "name": "limits",
    } in exported["parameters"]
    assert {"name": "cluster_name", "value": "rabbit-east"} in exported["global_parameters"]
    assert exported["users"][0]["limits"] == {"max-channels": 50}
    with running(None) as (_, api):
        answer = api.request("POST", "/api/definitions", exported)
        assert answer.status == 204, answer.body
        assert _lists(api) == before


def test_a_bad_policy_in_definitions_is_refused() -> None:
    with running(None) as (_, api):
        answer = api.request(
            "POST",
            "/api/definitions",
            {
                "policies": [
                    {
                        "vhost": "/",
                        "name": "bad",
                        "pattern": "^a",
                        "definition": {"message-ttl": -1},
                    }
                ]
            },
        )
        assert answer.status == 400
        assert answer.json()["reason"] == "Validation failed\n\n-1 is not a valid message TTL\n"
        assert api.get("/api/policies") == []
