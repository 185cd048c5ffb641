"""Definitions shared between two Pigeon nodes through the KV bucket, seen by pika."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.broker import Broker
from pigeon.cluster.definitions import decode_value, encode, encode_value, key_of
from pigeon.cluster.natsserver import LocalCluster
from pigeon.config import Config
from pigeon.core.commands import Bind, BindingRecord, DeclareQueue, DeleteQueue, QueueRecord


@pytest.fixture(scope="module")
def nodes(
    nats_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Broker, Broker]]:
    def config(name: str) -> Config:
        return Config(
            mqtt_port=0,
            mqtt_ws_port=0,
            port=0,
            data_dir=tmp_path_factory.mktemp(name),
            management_port=0,
            cluster=",".join(nats_cluster.urls),
        )

    with Broker.in_thread(config("a")) as a, Broker.in_thread(config("b")) as b:
        yield a, b


@pytest.fixture
def channels() -> Iterator[Callable[[Broker], BlockingChannel]]:
    """A channel on a node's own connection; every connection closed afterwards."""
    opened: list[pika.BlockingConnection] = []

    def open_on(broker: Broker) -> BlockingChannel:
        opened.append(pika.BlockingConnection(pika.URLParameters(broker.amqp_url)))
        return opened[-1].channel()

    yield open_on
    for connection in opened:
        if connection.is_open:
            connection.close()


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not replicated in time"
        time.sleep(0.02)


def _exists(broker: Broker, queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 404
        return False
    finally:
        connection.close()


def test_declare_on_a_is_found_on_b(
    nodes: tuple[Broker, Broker], uid: str, channels: Callable[[Broker], BlockingChannel]
) -> None:
    a, b = nodes
    channels(a).queue_declare(f"q-{uid}", durable=True)
    _eventually(lambda: _exists(b, f"q-{uid}"))


def test_bind_on_a_routes_a_publish_on_b(
    nodes: tuple[Broker, Broker], uid: str, channels: Callable[[Broker], BlockingChannel]
) -> None:
    a, b = nodes
    on_a = channels(a)
    on_a.exchange_declare(f"x-{uid}", "direct", durable=True)
    on_a.queue_declare(f"q-{uid}", durable=True)
    on_a.queue_bind(f"q-{uid}", f"x-{uid}", "key")
    on_b = channels(b)
    on_b.confirm_delivery()

    def routed() -> bool:
        try:
            on_b.basic_publish(f"x-{uid}", "key", b"hello", mandatory=True)
            return True
        except pika.exceptions.UnroutableError:
            return False

    _eventually(routed)
    # Messages stay on the node that took them (docs/cluster.md: not yet in JetStream).
    method, _, body = on_b.basic_get(f"q-{uid}", auto_ack=True)
    assert method is not None and body == b"hello"


def test_delete_on_b_is_gone_on_a(
    nodes: tuple[Broker, Broker], uid: str, channels: Callable[[Broker], BlockingChannel]
) -> None:
    a, b = nodes
    channels(a).queue_declare(f"q-{uid}", durable=True)
    _eventually(lambda: _exists(b, f"q-{uid}"))
    channels(b).queue_delete(f"q-{uid}")
    _eventually(lambda: not _exists(a, f"q-{uid}"))


def test_conflicting_declare_gets_406(
    nodes: tuple[Broker, Broker], uid: str, channels: Callable[[Broker], BlockingChannel]
) -> None:
    a, b = nodes
    channels(a).queue_declare(f"q-{uid}", durable=True, arguments={"x-message-ttl": 10000})
    _eventually(lambda: _exists(b, f"q-{uid}"))
    on_b = channels(b)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        on_b.queue_declare(f"q-{uid}", durable=True, arguments={"x-message-ttl": 20000})
    assert closed.value.reply_code == 406
    # The same arguments are a redeclare on either node.
    channels(b).queue_declare(f"q-{uid}", durable=True, arguments={"x-message-ttl": 10000})


def test_transient_queues_stay_on_their_node(
    nodes: tuple[Broker, Broker], uid: str, channels: Callable[[Broker], BlockingChannel]
) -> None:
    a, b = nodes
    channels(a).queue_declare(f"t-{uid}", durable=False)
    # A durable one declared after it is seen on b: the transient one was never shared.
    channels(a).queue_declare(f"d-{uid}", durable=True)
    _eventually(lambda: _exists(b, f"d-{uid}"))
    assert not _exists(b, f"t-{uid}")


def _management(broker: Broker, method: str, path: str, body: object) -> None:
    assert broker.management_url is not None
    request = urllib.request.Request(
        f"{broker.management_url}api/{path}", data=json.dumps(body).encode(), method=method
    )
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (201, 204)


def _logs_in(broker: Broker, user: str, password: str) -> bool:
    port = broker.amqp_port
    try:
        connection = pika.BlockingConnection(
            pika.ConnectionParameters("127.0.0.1", port, "/", pika.PlainCredentials(user, password))
        )
    except pika.exceptions.ProbableAuthenticationError:
        return False
    connection.close()
    return True


def test_a_user_added_on_a_logs_in_on_b(nodes: tuple[Broker, Broker], uid: str) -> None:
    a, b = nodes
    _management(a, "PUT", f"users/u-{uid}", {"password": "secret", "tags": ""})
    _management(
        a, "PUT", f"permissions/%2F/u-{uid}", {"configure": ".*", "write": ".*", "read": ".*"}
    )
    _eventually(lambda: _logs_in(b, f"u-{uid}", "secret"))


def test_a_policy_set_on_b_applies_on_a(nodes: tuple[Broker, Broker], uid: str) -> None:
    a, b = nodes
    definition = {"pattern": f"^p-{uid}$", "definition": {"max-length": 1}, "apply-to": "queues"}
    _management(b, "PUT", f"policies/%2F/pol-{uid}", definition)

    def limited() -> bool:
        assert a.management_url is not None
        request = urllib.request.Request(f"{a.management_url}api/policies/%2F")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return any(p["name"] == f"pol-{uid}" for p in json.loads(response.read()))

    _eventually(limited)


def test_keys_are_safe_for_any_name() -> None:
    assert encode("/") == "=2F"
    assert encode("") == "="
    assert encode("a.b*c>") == "a=2Eb=2Ac=3E"
    assert encode("é") == "=C3=A9"
    record = QueueRecord("/", "orders.eu", True, False, {"x-queue-type": "quorum"})
    assert key_of(DeclareQueue(record)) == "queue.=2F.orders=2Eeu"
    assert key_of(DeleteQueue("/", "orders.eu")) == key_of(DeclareQueue(record))


def test_values_round_trip() -> None:
    record = BindingRecord("/", "x", "q", "queue", "k", {"raw": b"\x00\x01", "n": 1})
    origin, command = decode_value(encode_value(Bind(record), "node-1"))
    assert origin == "node-1"
    assert command == Bind(record)


def test_a_new_node_catches_up(
    nats_cluster: LocalCluster,
    nodes: tuple[Broker, Broker],
    uid: str,
    tmp_path: Path,
    channels: Callable[[Broker], BlockingChannel],
) -> None:
    a, _ = nodes
    channels(a).queue_declare(f"q-{uid}", durable=True)
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path,
        management_port=None,
        cluster=",".join(nats_cluster.urls),
    )
    _eventually(lambda: _exists(nodes[1], f"q-{uid}"))
    with Broker.in_thread(config) as late:
        assert _exists(late, f"q-{uid}")
