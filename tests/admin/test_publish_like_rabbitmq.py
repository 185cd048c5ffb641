"""HTTP publish answers with RabbitMQ's status codes, checked side by side.

Issue 12's reproductions (``{"priority": 300}``, a 300-byte correlation id) sent to a
private RabbitMQ node's management API and to Pigeon's: the same status for each.
Needs Debian's ``rabbitmq-server`` with its management plugin (``.ci/run`` installs
it); the node runs on free loopback ports (``benchmarks.brokers.RabbitNode``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from admin_helpers import Api
from benchmarks.brokers import RABBITMQ_SERVER, RabbitNode

from pigeon.broker import Broker
from pigeon.config import Config

pytestmark = pytest.mark.skipif(
    not os.access(RABBITMQ_SERVER, os.X_OK), reason="Debian's rabbitmq-server is not installed"
)
CASES = [
    {"priority": 300},
    {"correlation_id": "x" * 300},
    {"message_id": "m" * 256, "priority": 255},
    {"expiration": "soon"},
    {"delivery_mode": 3},
    {"delivery_mode": 2, "headers": {"a": [1, "b"]}, "expiration": "60000"},
]


@pytest.fixture(scope="module")
def apis() -> Iterator[tuple[Api, Api]]:
    with (
        RabbitNode(management=True) as rabbit,
        Broker.in_thread(
            Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
        ) as pigeon,
    ):
        assert rabbit.management_url is not None and pigeon.management_url is not None
        yield Api(rabbit.management_url), Api(str(pigeon.management_url).rstrip("/"))


@pytest.mark.parametrize("properties", CASES)
def test_publish_status_is_rabbitmqs(apis: tuple[Api, Api], properties: dict[str, object]) -> None:
    answers = []
    for api in apis:
        assert api.request("PUT", "/api/queues/%2F/same-answers", {}).status in (201, 204)
        answers.append(
            api.request(
                "POST",
                "/api/exchanges/%2F/amq.default/publish",
                {"routing_key": "same-answers", "payload": "x", "payload_encoding": "string",
                 "properties": properties},
            )
        )  # fmt: skip
    rabbit, pigeon = answers
    assert pigeon.status == rabbit.status
    if rabbit.status == 400:  # the same reason too: the AMQP close RabbitMQ's channel got
        assert pigeon.json()["reason"] == rabbit.json()["reason"]
