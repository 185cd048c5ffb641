"""What the Pigeon 0.1 data folder in ``fixtures/pigeon-0.1/`` holds, and how it was made.

``populate`` is what made it (``python tests/storage/legacy_folder.py OUT_DIR``, run on
the 0.1 source: see the fixture's README); ``test_legacy_folder.py`` opens a copy with
today's code and checks every item below through the clients and the HTTP API. Keep
this module free of anything but clients, so that it runs on any version.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import json
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pika

VHOST = "legacy"
USER, PASSWORD, TAGS = "legacy-app", "legacy-Pa55", ["management"]

EXCHANGES: list[dict[str, Any]] = [
    {"name": "orders", "type": "topic", "arguments": {}},
    {"name": "events", "type": "headers", "arguments": {}},
    {"name": "broadcast", "type": "fanout", "arguments": {"alternate-exchange": "unrouted"}},
    {"name": "unrouted", "type": "fanout", "arguments": {}},
]
QUEUES: list[dict[str, Any]] = [
    {"name": "orders.eu", "arguments": {"x-max-length": 10_000, "x-dead-letter-exchange": "dlx"}},
    {"name": "jobs", "arguments": {"x-max-priority": 5}},
    {"name": "audit", "arguments": {"x-message-ttl": 86_400_000, "x-queue-mode": "lazy"}},
    {"name": "empty", "arguments": {}},
]
# (source, destination, destination type, routing key, arguments)
BINDINGS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("orders", "orders.eu", "queue", "eu.#", {}),
    ("events", "audit", "queue", "", {"x-match": "any", "kind": "audit", "level": 3}),
    ("broadcast", "orders", "exchange", "", {}),
    ("unrouted", "empty", "queue", "", {}),
]

HEADERS: dict[str, Any] = {
    "text": "zürich",
    "count": 7,
    "big": 2**40,
    "negative": -12,
    "flag": True,
    "price": decimal.Decimal("12.50"),
    "when": datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC),
    "nested": {"a": 1, "b": ["x", 2, False]},
    "list": [1, "two", {"three": 3}],
    "nothing": None,
}
FULL = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "headers": HEADERS,
    "delivery_mode": 2,
    "priority": 3,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "message_id": "msg-1",
    "timestamp": 1_764_504_000,
    "type": "order.created",
    "user_id": USER,
    "app_id": "shop",
}
# (queue, body, properties) in publish order; every one persistent, published as USER.
MESSAGES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("orders.eu", b'{"id": 1}', FULL),
    ("orders.eu", b"", {"delivery_mode": 2}),
    ("orders.eu", bytes(range(256)) * 800, {"delivery_mode": 2, "content_type": "image/png"}),
    ("orders.eu", "grüße".encode(), {"delivery_mode": 2, "headers": {"x-seen": ["a", "b"]}}),
    *[("jobs", f"job {p}".encode(), {"delivery_mode": 2, "priority": p}) for p in (0, 5, 2, 5)],
    ("audit", b"audit entry", {"delivery_mode": 2, "headers": {"kind": "audit"}}),
]
# Of orders.eu's messages, how many a consumer held unacked when the broker stopped:
# they come back first, with redelivered set.
UNACKED = 2


def amqp_url(port: int) -> str:
    return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{port}/{VHOST}"


def _api(base: str, method: str, path: str, body: Any) -> None:
    token = base64.b64encode(b"guest:guest").decode()
    request = urllib.request.Request(
        base.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def populate(management_url: str, port: int) -> pika.BlockingConnection:
    """Make every item above; returns the connection that holds UNACKED deliveries
    (stop the broker while it is open)."""
    _api(management_url, "PUT", f"/api/vhosts/{VHOST}", {})
    _api(
        management_url, "PUT", f"/api/users/{USER}", {"password": PASSWORD, "tags": ",".join(TAGS)}
    )
    grant = {"configure": ".*", "write": ".*", "read": ".*"}
    _api(management_url, "PUT", f"/api/permissions/{VHOST}/{USER}", grant)
    topic = {"exchange": "orders", "write": "^eu\\.", "read": ".*"}
    _api(management_url, "PUT", f"/api/topic-permissions/{VHOST}/{USER}", topic)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url(port)))
    channel = connection.channel()
    for exchange in EXCHANGES:
        channel.exchange_declare(exchange["name"], exchange["type"], durable=True,
                                 arguments=exchange["arguments"])  # fmt: skip
    for queue in QUEUES:
        channel.queue_declare(queue["name"], durable=True, arguments=queue["arguments"])
    for source, destination, kind, key, arguments in BINDINGS:
        if kind == "queue":
            channel.queue_bind(destination, source, key, arguments)
        else:
            channel.exchange_bind(destination, source, key, arguments)
    channel.confirm_delivery()
    for queue, body, properties in MESSAGES:
        channel.basic_publish("", queue, body, pika.BasicProperties(**properties))
    holder = connection.channel()
    holder.basic_qos(prefetch_count=UNACKED)
    held: list[int] = []
    holder.basic_consume("orders.eu", lambda _ch, method, _p, _b: held.append(method.delivery_tag))
    while len(held) < UNACKED:
        connection.process_data_events(time_limit=1)
    return connection


def main(out: Path) -> None:
    """Run a broker of this checkout in-process, populate it, stop it, keep pigeon.db."""
    from pigeon.broker import Broker  # the version being captured
    from pigeon.config import Config

    work = out.parent / (out.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=work, management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        connection = populate(broker.management_url, broker.amqp_port)
    # The broker closed the connection (320 on shutdown); the held deliveries were
    # requeued and saved as delivered.
    with contextlib.suppress(pika.exceptions.AMQPConnectionError):
        connection.process_data_events(time_limit=2)
    assert connection.is_closed
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "pigeon.db", out / "pigeon.db")
    shutil.rmtree(work)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
