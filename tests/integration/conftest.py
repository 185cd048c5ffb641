"""Fixtures shared by the client-level tests."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from helpers import EXTERNAL, connect
from management import Target


@pytest.fixture
def connection(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    """A pika connection to the broker under test, closed after the test."""
    with connect(amqp_url) as conn:
        yield conn


@pytest.fixture
def cleanup(connection: pika.BlockingConnection) -> Iterator[list[str]]:
    """Names appended here (queues, or ``"x:"`` + exchange) are deleted after the test."""
    names: list[str] = []
    yield names
    if not connection.is_open:
        return
    channel = connection.channel()
    for name in names:
        if name.startswith("x:"):
            channel.exchange_delete(name[2:])
        else:
            channel.queue_delete(name)
    channel.close()


@pytest.fixture(scope="session")
def broker_api(broker_url: str, pigeon_cluster: Any) -> Iterator[tuple[str, str]]:
    """(management base URL, AMQP host:port) of the broker under test."""
    if pigeon_cluster is not None:
        yield pigeon_cluster.management(0)
        return
    if EXTERNAL:
        host = urllib.parse.urlsplit(broker_url).hostname or "127.0.0.1"
        yield f"http://{host}:15672", broker_url.split("@", 1)[1].split("/", 1)[0]
        return
    from pigeon.broker import Broker
    from pigeon.config import Config

    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
    ) as broker:
        assert broker.management_url is not None
        yield broker.management_url.rstrip("/"), f"127.0.0.1:{broker.amqp_port}"


@pytest.fixture
def target(
    broker_api: tuple[str, str], pigeon_cluster: Any, cluster_node: int | None
) -> Iterator[Target]:
    # In a cluster run (--cluster-nodes), the management API of this test's node.
    base, amqp = broker_api if cluster_node is None else pigeon_cluster.management(cluster_node)
    made = Target(base, amqp, f"policies-test-{uuid.uuid4().hex[:8]}")
    made.put(f"/vhosts/{made.v}", {})
    made.put(f"/permissions/{made.v}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    yield made
    made.call("DELETE", f"/vhosts/{made.v}")
