"""A reply that says a durable change happened means the change is on disk (issue 13, part 2).

Each case kills the broker (SIGKILL) the moment the reply arrives, restarts it on
the same data folder and checks that the change survived: a durable queue
declared, 5,000 declares and binds sent back to back, 1,000 deletes, a purge of
5,000 confirmed messages, and users, a vhost and a permission created through
the management API. Before the replies waited for the store's barrier, each of
them could be answered while the change was still in memory.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.frame import FrameTypes as Frame
from pamqp.header import ContentHeader

from .broker_process import BrokerProcess
from .clients import abandon, connect
from .conftest import MakeBroker
from .pipeline import Pipeline

AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def api(broker: BrokerProcess, method: str, path: str, body: Any = None) -> Any:
    """One management API call on the running broker; the decoded answer (or None)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{broker.management_port}/api{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": AUTH, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


def queue_names(broker: BrokerProcess) -> set[str]:
    return {row["name"] for row in api(broker, "GET", "/queues/%2F")}


def bindings_to_queues(broker: BrokerProcess, source: str) -> set[tuple[str, str]]:
    return {
        (row["destination"], row["routing_key"])
        for row in api(broker, "GET", "/bindings/%2F")
        if row["source"] == source and row["destination_type"] == "queue"
    }


def test_declare_ok_means_the_queue_is_on_disk(make_broker: MakeBroker, tmp_path: Path) -> None:
    broker = make_broker(tmp_path / "data")
    rounds = 3
    for n in range(rounds + 1):
        broker.start()
        connection = connect(broker.url)
        channel = connection.channel()
        for earlier in range(n):
            channel.queue_declare(f"orders-{earlier}", passive=True)  # 404 if lost
        if n == rounds:
            connection.close()
            break
        channel.queue_declare(f"orders-{n}", durable=True)
        broker.kill()  # the moment declare-ok arrived
        abandon(connection)


def test_thousands_of_declares_and_binds_killed_at_the_last_bind_ok(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    count = 5_000
    broker = make_broker(tmp_path / "data", management=True)
    broker.start()
    frames: list[Frame] = []
    for n in range(count):
        frames.append(commands.Queue.Declare(queue=f"orders-{n}", durable=True))
        frames.append(
            commands.Queue.Bind(
                queue=f"orders-{n}", exchange="amq.topic", routing_key=f"orders.{n}"
            )
        )
    with Pipeline(broker.port) as client:
        client.send_all(frames)
        client.replies(count, commands.Queue.BindOk)
        broker.kill()
    broker.start()
    expected = {f"orders-{n}" for n in range(count)}
    assert not expected - queue_names(broker), "declared queues are missing"
    bound = bindings_to_queues(broker, "amq.topic")
    missing = {(f"orders-{n}", f"orders.{n}") for n in range(count)} - bound
    assert not missing, f"{len(missing)} bindings are missing"


def test_deletes_killed_at_the_last_delete_ok_stay_deleted(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    count = 1_000
    broker = make_broker(tmp_path / "data", management=True)
    broker.start()
    names = [f"doomed-{n}" for n in range(count)]
    with Pipeline(broker.port) as client:
        client.send_all([commands.Queue.Declare(queue=name, durable=True) for name in names])
        client.replies(count, commands.Queue.DeclareOk)
    broker.stop()  # a clean stop: every declare is on disk, whatever the replies did
    broker.start()
    assert set(names) <= queue_names(broker)
    with Pipeline(broker.port) as client:
        client.send_all([commands.Queue.Delete(queue=name) for name in names])
        client.replies(count, commands.Queue.DeleteOk)
        broker.kill()
    broker.start()
    back = set(names) & queue_names(broker)
    assert not back, f"{len(back)} deleted queues came back"


def test_purge_killed_at_purge_ok_stays_purged(make_broker: MakeBroker, tmp_path: Path) -> None:
    count = 5_000
    broker = make_broker(tmp_path / "data")
    broker.start()
    persistent = commands.Basic.Properties(delivery_mode=2)
    frames: list[Frame] = [
        commands.Queue.Declare(queue="purged", durable=True),
        commands.Confirm.Select(),
    ]
    for n in range(count):
        body = b"%06d" % n
        frames += [
            commands.Basic.Publish(exchange="", routing_key="purged"),
            ContentHeader(0, len(body), persistent),
            ContentBody(body),
        ]
    with Pipeline(broker.port) as client:
        client.send_all(frames)
        confirmed = 0
        while confirmed < count:
            ack = client.replies(1, commands.Basic.Ack)
            assert isinstance(ack, commands.Basic.Ack)
            confirmed = ack.delivery_tag
        client.send_now(1, commands.Queue.Purge(queue="purged"))
        purged = client.replies(1, commands.Queue.PurgeOk)
        broker.kill()
    assert isinstance(purged, commands.Queue.PurgeOk)
    assert purged.message_count == count
    broker.start()
    connection = connect(broker.url)
    declared = connection.channel().queue_declare("purged", passive=True)
    connection.close()
    assert declared.method.message_count == 0, "purged messages came back"


def test_users_vhosts_and_permissions_are_on_disk_at_the_2xx(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    broker = make_broker(tmp_path / "data", management=True)
    broker.start()
    api(broker, "PUT", "/vhosts/topology-v", {})
    api(broker, "PUT", "/users/topology-u", {"password": "topology-pw", "tags": ""})
    api(
        broker,
        "PUT",
        "/permissions/topology-v/topology-u",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    broker.kill()  # the moment the last 2xx arrived
    broker.start()
    assert api(broker, "GET", "/users/topology-u")["name"] == "topology-u"
    url = f"amqp://topology-u:topology-pw@127.0.0.1:{broker.port}/{quote('topology-v', safe='')}"
    connection = pika.BlockingConnection(pika.URLParameters(url))  # login, vhost, permission
    connection.channel().queue_declare("topology-q", durable=True)
    connection.close()
