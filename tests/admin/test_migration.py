"""The walk-through of docs/migrating.md, done for real: a RabbitMQ 3.x node's
definitions exported with ``rabbitmqctl export_definitions``, imported into Pigeon
with ``pigeon ctl import``, and the same pika application pointed at each broker.

Needs Debian's ``rabbitmq-server`` (``.ci/run`` installs it); the node is a private
one on free loopback ports (``benchmarks.brokers.RabbitNode``), stopped at the end.
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
from admin_helpers import Api
from benchmarks.brokers import RabbitNode

from pigeon.auth.users import rabbit_sha256_hash
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
    request = urllib.request.Request(
        base.rstrip("/") + path, headers={"Authorization": f"Basic {token}"}
    )
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
    rabbitmqctl(
        rabbit,
        "set_policy",
        "-p",
        VHOST,
        "--apply-to",
        "queues",
        "--priority",
        "1",
        "orders-cap",
        r"^orders\.",
        '{"max-length": 500, "overflow": "reject-publish"}',
    )
    set_up_topology(url(rabbit.port))
    assert application(url(rabbit.port)) == (b'{"id": 1}', b'{"id": 2}')
    definitions = tmp_path / "rabbitmq-definitions.json"
    rabbitmqctl(rabbit, "export_definitions", str(definitions))

    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "pigeon-data", management_port=0
    )
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


# -- and back: Pigeon's definitions imported into RabbitMQ ------------------------------


def pigeon_ctl(base: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pigeon", "ctl", "--url", base, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def logs_in(port: int, user: str, password: str) -> bool:
    """Whether an AMQP login (pika, vhost /) with these credentials succeeds."""
    credentials = pika.PlainCredentials(user, password)
    try:
        connection = pika.BlockingConnection(
            pika.ConnectionParameters("127.0.0.1", port, "/", credentials)
        )
    except pika.exceptions.AMQPConnectionError:
        return False
    connection.close()
    return True


def cluster_name(node: RabbitNode) -> str:
    status = json.loads(rabbitmqctl(node, "cluster_status", "--formatter", "json"))
    return str(status["cluster_name"])


def test_definitions_from_pigeon_let_every_user_log_in_to_rabbitmq(
    rabbit: RabbitNode, tmp_path: Path
) -> None:
    """With definitions_password_hashing = "rabbitmq", users made in Pigeon (the default
    guest, one added with ``pigeon ctl``, one imported with RabbitMQ's own hash) log in
    to RabbitMQ after ``rabbitmqctl import_definitions``, the cluster keeps its name, and
    the same file brings the strong scrypt hashes back into Pigeon, also after a restart."""
    legacy = tmp_path / "legacy.json"
    user = {
        "name": "mig-legacy",
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "password_hash": base64.b64encode(rabbit_sha256_hash("legacy-pw")).decode(),
        "tags": [],
    }
    everything = {"user": "mig-legacy", "vhost": "/", "configure": ".*", "write": ".*",
                  "read": ".*"}  # fmt: skip
    legacy.write_text(json.dumps({"users": [user], "permissions": [everything]}))
    name_before = cluster_name(rabbit)
    exported = tmp_path / "pigeon-definitions.json"
    config = Config(mqtt_port=0, mqtt_ws_port=0,
        port=0, data_dir=tmp_path / "pigeon-data", management_port=0,
        definitions_password_hashing="rabbitmq",
    )  # fmt: skip
    with Broker.in_thread(config) as broker:
        base = str(broker.management_url)
        pigeon_ctl(base, "add-user", "mig-app", PASSWORD, "--tags", "monitoring")
        pigeon_ctl(base, "set-permissions", "mig-app", "--configure", ".*", "--write", ".*",
                   "--read", ".*")  # fmt: skip
        pigeon_ctl(base, "import", str(legacy))
        # A cluster name set on Pigeon is exported as RabbitMQ exports it, but not for
        # RabbitMQ: there it would rename the importing cluster.
        named = Api(base.rstrip("/")).request(
            "PUT", "/api/global-parameters/cluster_name", {"value": "pigeon-east"}
        )
        assert named.status in (201, 204)
        plain = json.loads(pigeon_ctl(base, "export", "-").stdout)
        assert {"name": "cluster_name", "value": "pigeon-east"} in plain["global_parameters"]
        done = pigeon_ctl(base, "export", "--for", "rabbitmq", str(exported))
        assert "left out" not in done.stderr
    data = json.loads(exported.read_text())
    assert {u["name"] for u in data["users"]} == {"guest", "mig-app", "mig-legacy"}
    assert {u["hashing_algorithm"] for u in data["users"]} == {"rabbit_password_hashing_sha256"}
    assert data["pigeon_users_left_out"] == []
    assert "cluster_name" not in exported.read_text()

    rabbitmqctl(rabbit, "import_definitions", str(exported))
    assert logs_in(rabbit.port, "guest", "guest")
    assert logs_in(rabbit.port, "mig-app", PASSWORD)
    assert logs_in(rabbit.port, "mig-legacy", "legacy-pw")
    assert not logs_in(rabbit.port, "mig-app", "wrong")
    assert cluster_name(rabbit) == name_before

    # Restarted on its data folder, Pigeon exports the very same users (both hashes kept).
    with Broker.in_thread(config) as broker:
        base = str(broker.management_url)
        again = json.loads(pigeon_ctl(base, "export", "-").stdout)
        assert again["users"] == data["users"]
    # A Pigeon without the setting imports the file: the app's scrypt hash comes back.
    fresh = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
    with Broker.in_thread(fresh) as broker:
        pigeon_ctl(str(broker.management_url), "import", str(exported))
        assert logs_in(broker.amqp_port, "mig-app", PASSWORD)
        assert logs_in(broker.amqp_port, "mig-legacy", "legacy-pw")
        stored = json.loads(pigeon_ctl(str(broker.management_url), "export", "-").stdout)
        app = next(u for u in stored["users"] if u["name"] == "mig-app")
        assert base64.b64decode(app["pigeon_password_hash"]).startswith(b"$scrypt$")


def test_users_rabbitmq_cannot_check_are_left_out_and_named(
    rabbit: RabbitNode, tmp_path: Path
) -> None:
    """By default passwords set in Pigeon have only a scrypt hash: ``export --for
    rabbitmq`` leaves those users and their permissions out and names them, so the
    import cannot lock RabbitMQ's own guest out; a plain export keeps them for Pigeon."""
    exported, backup = tmp_path / "for-rabbitmq.json", tmp_path / "backup.json"
    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
    ) as broker:
        base = str(broker.management_url)
        pigeon_ctl(base, "add-user", "mig-strong", PASSWORD)
        pigeon_ctl(base, "set-permissions", "mig-strong", "--configure", ".*", "--write",
                   ".*", "--read", ".*")  # fmt: skip
        done = pigeon_ctl(base, "export", "--for", "rabbitmq", str(exported))
        pigeon_ctl(base, "export", str(backup))
    assert "left out users RabbitMQ could not log in" in done.stderr
    assert done.stderr.strip().endswith("guest, mig-strong")
    data = json.loads(exported.read_text())
    assert data["users"] == [] and data["permissions"] == []
    assert data["pigeon_users_left_out"] == ["guest", "mig-strong"]
    kept = json.loads(backup.read_text())
    assert {u["name"] for u in kept["users"]} == {"guest", "mig-strong"}

    rabbitmqctl(rabbit, "import_definitions", str(exported))
    assert logs_in(rabbit.port, "guest", "guest")
    assert "mig-strong" not in rabbitmqctl(rabbit, "list_users")
