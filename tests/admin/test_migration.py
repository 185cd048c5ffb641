"""The walk-through of docs/migrating.md, done for real: a RabbitMQ 3.x node's
definitions exported with ``rabbitmqctl export_definitions``, imported into Pigeon
with ``pigeon ctl import``, and the same pika application pointed at each broker.

Needs Debian's ``rabbitmq-server`` (``.ci/run`` installs it); the node is a private
one on free loopback ports (``bench.brokers.RabbitNode``), stopped at the end.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pytest
from bench.brokers import RabbitNode

from pigeon.broker import Broker
from pigeon.config import Config

RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
pytestmark = pytest.mark.skipif(
    not os.access(RABBITMQCTL, os.X_OK), reason="Debian's rabbitmq-server is not installed"
)

VHOST = "shop"
USER, PASSWORD = "orders-app", "s3cret-Pa55"


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    with RabbitNode() as node:
        yield node


def rabbitmqctl(node: RabbitNode, *args: str) -> str:
    """``rabbitmqctl`` against the private node (its own HOME holds its cookie)."""
    done = subprocess.run(
        [RABBITMQCTL, "-n", f"bench-{node.port}@localhost", *args],
        env={**os.environ, "HOME": str(node.dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def url(port: int) -> str:
    return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{port}/{quote(VHOST, safe='')}"


def management_get(base: str, path: str) -> Any:
    token = base64.b64encode(b"guest:guest").decode()
    request = urllib.request.Request(base.rstrip("/") + path,
                                     headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def set_up_topology(amqp_url: str) -> None:
    """What the application's deployment declared on RabbitMQ."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare("orders", "topic", durable=True)
    channel.exchange_declare("orders.dead", "fanout", durable=True)
    channel.queue_declare("orders.dead", durable=True)
    channel.queue_bind("orders.dead", "orders.dead")
    channel.queue_declare(
        "orders.eu",
        durable=True,
        arguments={"x-dead-letter-exchange": "orders.dead", "x-max-length": 1000},
    )
    channel.queue_bind("orders.eu", "orders", "eu.#")
    connection.close()


def application(amqp_url: str) -> tuple[bytes, bytes]:
    """The pika application: passive-checks its topology (it does not declare it),
    publishes an order with confirms, takes it, rejects a second one to the DLX."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare("orders", "topic", passive=True)
    channel.queue_declare("orders.eu", passive=True)
    channel.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    channel.basic_publish("orders", "eu.de.berlin", b'{"id": 1}', persistent, mandatory=True)
    channel.basic_publish("orders", "eu.fr", b'{"id": 2}', persistent, mandatory=True)
    first = channel.basic_get("orders.eu")
    second = channel.basic_get("orders.eu")
    assert first[0] is not None and second[0] is not None
    channel.basic_ack(first[0].delivery_tag)
    channel.basic_reject(second[0].delivery_tag, requeue=False)
    for _ in range(50):  # dead-lettering is asynchronous on both brokers
        dead = channel.basic_get("orders.dead", auto_ack=True)
        if dead[0] is not None:
            break
        connection.sleep(0.05)
    assert dead[0] is not None, "the rejected order never reached the dead-letter queue"
    connection.close()
    return first[2], dead[2]


def test_definitions_from_rabbitmq_run_the_same_application(
    rabbit: RabbitNode, tmp_path: Path
) -> None:
    rabbitmqctl(rabbit, "add_vhost", VHOST)
    rabbitmqctl(rabbit, "add_user", USER, PASSWORD)
    rabbitmqctl(rabbit, "set_permissions", "-p", VHOST, USER, ".*", ".*", ".*")
    # Operators set limits by policy rather than queue arguments.
    rabbitmqctl(rabbit, "set_policy", "-p", VHOST, "--apply-to", "queues", "--priority", "1",
                "orders-cap", r"^orders\.", '{"max-length": 500, "overflow": "reject-publish"}')
    set_up_topology(url(rabbit.port))
    assert application(url(rabbit.port)) == (b'{"id": 1}', b'{"id": 2}')
    definitions = tmp_path / "rabbitmq-definitions.json"
    rabbitmqctl(rabbit, "export_definitions", str(definitions))

    config = Config(port=0, data_dir=tmp_path / "pigeon-data", management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        imported = subprocess.run(
            [sys.executable, "-m", "pigeon", "ctl", "--url", broker.management_url,
             "import", str(definitions)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        # The user logs in with the password it had on RabbitMQ (its sha256 hash moved),
        # and the application runs unchanged but for the port.
        assert application(url(broker.amqp_port)) == (b'{"id": 1}', b'{"id": 2}')
        # The policy came along and applies to the queue as it did on RabbitMQ.
        queue = management_get(broker.management_url, f"/api/queues/{VHOST}/orders.eu")
        assert queue["policy"] == "orders-cap"
        assert queue["effective_policy_definition"]["overflow"] == "reject-publish"
