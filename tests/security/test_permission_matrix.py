"""The permission matrix: each operation, by a user with and without each permission.

Over AMQP (pika) and over the management HTTP API, against RabbitMQ's
access-control table (test_entry_points.py runs one table over AMQP, HTTP and
the embedded API). Users are made through the HTTP API. "lacks-X" has
every permission but X; "nothing" has vhost access and no permission.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from permission_world import ALL, KINDS, NONE, Http, World, topology
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.auth.users import TopicPermission
from pigeon.broker import Broker
from pigeon.config import Config

USERS = {
    "full": (ALL, ALL, ALL),
    "lacks-configure": (NONE, ALL, ALL),
    "lacks-write": (ALL, NONE, ALL),
    "lacks-read": (ALL, ALL, NONE),
    "nothing": (NONE, NONE, NONE),
}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        admin = Http(broker.management_url.rstrip("/"), "guest", "guest")
        here = World(broker, admin, f"pm{uuid.uuid4().hex[:6]}")
        for user, (configure, write, read) in USERS.items():
            name = here.name(user)
            assert (
                admin.call("PUT", f"/api/users/{name}", {"password": "pw", "tags": "management"})[0]
                == 201
            )
            status, _ = admin.call(
                "PUT",
                f"/api/permissions/%2F/{name}",
                {"configure": configure, "write": write, "read": read},
            )
            assert status in (201, 204)
        yield here


# -- AMQP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    needs: frozenset[str]  # empty: any one permission will do (passive declares)
    setup: Callable[[BlockingChannel, str], None]
    act: Callable[[BlockingChannel, str], Any]


OPERATIONS = [
    Operation(
        "exchange.declare",
        frozenset({"configure"}),
        lambda ch, n: None,
        lambda ch, n: ch.exchange_declare(f"new-x-{n}", "direct"),
    ),
    Operation(
        "exchange.declare passive",
        frozenset(),
        topology,
        lambda ch, n: ch.exchange_declare(f"x-{n}", passive=True),
    ),
    Operation(
        "exchange.delete",
        frozenset({"configure"}),
        topology,
        lambda ch, n: ch.exchange_delete(f"x2-{n}"),
    ),
    Operation(
        "queue.declare",
        frozenset({"configure"}),
        lambda ch, n: None,
        lambda ch, n: ch.queue_declare(f"new-q-{n}"),
    ),
    Operation(
        "queue.declare server-named",
        frozenset({"configure"}),
        lambda ch, n: None,
        lambda ch, n: ch.queue_declare("", exclusive=True),
    ),
    Operation(
        "queue.declare passive",
        frozenset(),
        topology,
        lambda ch, n: ch.queue_declare(f"q-{n}", passive=True),
    ),
    Operation(
        "queue.delete", frozenset({"configure"}), topology, lambda ch, n: ch.queue_delete(f"q-{n}")
    ),
    Operation("queue.purge", frozenset({"read"}), topology, lambda ch, n: ch.queue_purge(f"q-{n}")),
    Operation(
        "queue.bind",
        frozenset({"write", "read"}),
        topology,
        lambda ch, n: ch.queue_bind(f"q-{n}", f"x-{n}", "other"),
    ),
    Operation(
        "queue.unbind",
        frozenset({"write", "read"}),
        topology,
        lambda ch, n: ch.queue_unbind(f"q-{n}", f"x-{n}", "k"),
    ),
    Operation(
        "exchange.bind",
        frozenset({"write", "read"}),
        topology,
        lambda ch, n: ch.exchange_bind(f"x2-{n}", f"x-{n}", "other"),
    ),
    Operation(
        "exchange.unbind",
        frozenset({"write", "read"}),
        topology,
        lambda ch, n: ch.exchange_unbind(f"x2-{n}", f"x-{n}", "k"),
    ),
    Operation(
        "basic.publish",
        frozenset({"write"}),
        topology,
        lambda ch, n: ch.basic_publish(f"x-{n}", "k", b"m"),
    ),
    Operation(
        "basic.publish default exchange",
        frozenset({"write"}),
        topology,
        lambda ch, n: ch.basic_publish("", f"q-{n}", b"m"),
    ),
    Operation("basic.get", frozenset({"read"}), topology, lambda ch, n: ch.basic_get(f"q-{n}")),
    Operation(
        "basic.consume",
        frozenset({"read"}),
        topology,
        lambda ch, n: ch.basic_consume(f"q-{n}", lambda *a: None),
    ),
    Operation(
        "queue.declare with DLX",
        frozenset({"configure", "write", "read"}),
        topology,
        lambda ch, n: ch.queue_declare(
            f"dlx-q-{n}", arguments={"x-dead-letter-exchange": f"x-{n}"}
        ),
    ),
    Operation(
        "exchange.declare with AE",
        frozenset({"configure", "write", "read"}),
        topology,
        lambda ch, n: ch.exchange_declare(
            f"ae-x-{n}", "direct", arguments={"alternate-exchange": f"x-{n}"}
        ),
    ),
]


def _allowed(op: Operation, user: str) -> bool:
    granted = {k for k, pattern in zip(KINDS, USERS[user], strict=True) if pattern == ALL}
    return bool(granted) if not op.needs else op.needs <= granted


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_amqp(world: World, op: Operation, user: str) -> None:
    n = uuid.uuid4().hex[:8]
    with world.amqp("full") as owner:
        setup = owner.channel()
        op.setup(setup, n)
        with world.amqp(user) as connection:
            channel = connection.channel()
            channel.confirm_delivery()  # so a refused publish is answered before we look
            if _allowed(op, user):
                op.act(channel, n)
                assert channel.is_open
            else:
                with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                    op.act(channel, n)
                    connection.process_data_events(time_limit=0.2)
                assert refused.value.reply_code == 403
                assert refused.value.reply_text.startswith("ACCESS_REFUSED - access to ")
                assert (
                    f"in vhost '/' refused for user '{world.name(user)}'"
                    in refused.value.reply_text
                )
        _cleanup(setup, n)


def _cleanup(ch: BlockingChannel, n: str) -> None:
    for queue in (f"q-{n}", f"new-q-{n}", f"dlx-q-{n}"):
        ch.queue_delete(queue)
    for exchange in (f"x-{n}", f"x2-{n}", f"new-x-{n}", f"ae-x-{n}"):
        ch.exchange_delete(exchange)


def test_refusal_names_the_resource_exactly(world: World) -> None:
    n = uuid.uuid4().hex[:8]
    with world.amqp("lacks-configure") as connection:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare(f"q-{n}")
    assert refused.value.reply_text == (
        f"ACCESS_REFUSED - access to queue 'q-{n}' in vhost '/' refused for user "
        f"'{world.name('lacks-configure')}'"
    )


def test_default_exchange_is_checked_as_amq_default(world: World) -> None:
    with world.amqp("lacks-write") as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish("", "anything", b"m")
    assert "exchange 'amq.default'" in refused.value.reply_text


def test_vhost_without_permissions_is_refused_at_open(world: World) -> None:
    name = world.name("elsewhere")
    assert world.admin.call("PUT", f"/api/users/{name}", {"password": "pw", "tags": ""})[0] == 201
    credentials = pika.PlainCredentials(name, "pw")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        pika.BlockingConnection(
            pika.ConnectionParameters("127.0.0.1", world.broker.amqp_port, credentials=credentials)
        )
    assert f"(530) \"NOT_ALLOWED - access to vhost '/' refused for user '{name}'\"" in str(
        refused.value
    )


def test_topic_permissions_on_topic_exchanges(world: World) -> None:
    n = uuid.uuid4().hex[:8]
    user = world.name("full")
    assert world.broker.context is not None
    # The user store's public API (the HTTP API has no topic-permissions endpoint yet).
    world.broker.context.users.set_topic_permission(
        "/", user, TopicPermission(f"t-{n}", write="^eu\\.", read="^{username}|^eu\\.")
    )
    with world.amqp("full") as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare(f"t-{n}", "topic")
        channel.queue_declare(f"tq-{n}")
        channel.queue_bind(f"tq-{n}", f"t-{n}", "eu.orders")
        channel.basic_publish(f"t-{n}", "eu.orders", b"m")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(f"t-{n}", "us.orders", b"m")
        assert refused.value.reply_text == (
            f"ACCESS_REFUSED - write access to topic 'us.orders' in exchange 't-{n}' in "
            f"vhost '/' refused for user '{user}'"
        )
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_bind(f"tq-{n}", f"t-{n}", "us.#")
        channel = connection.channel()
        channel.queue_delete(f"tq-{n}")
        channel.exchange_delete(f"t-{n}")


# -- HTTP API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpOperation:
    name: str
    needs: frozenset[str]
    act: Callable[[Http, str], tuple[int, Any]]
    # RabbitMQ 3.10's API answers a refused publish 400 with the AMQP close (403 ...).
    refused: int = 401


def _q(n: str) -> str:
    return quote(f"q-{n}", safe="")


HTTP_OPERATIONS = [
    HttpOperation(
        "PUT exchange",
        frozenset({"configure"}),
        lambda h, n: h.call("PUT", f"/api/exchanges/%2F/new-x-{n}", {"type": "direct"}),
    ),
    HttpOperation(
        "DELETE exchange",
        frozenset({"configure"}),
        lambda h, n: h.call("DELETE", f"/api/exchanges/%2F/x2-{n}"),
    ),
    HttpOperation(
        "PUT queue",
        frozenset({"configure"}),
        lambda h, n: h.call("PUT", f"/api/queues/%2F/new-q-{n}", {}),
    ),
    HttpOperation(
        "DELETE queue",
        frozenset({"configure"}),
        lambda h, n: h.call("DELETE", f"/api/queues/%2F/{_q(n)}"),
    ),
    HttpOperation(
        "purge queue",
        frozenset({"read"}),
        lambda h, n: h.call("DELETE", f"/api/queues/%2F/{_q(n)}/contents"),
    ),
    HttpOperation(
        "bind queue",
        frozenset({"write", "read"}),
        lambda h, n: h.call(
            "POST", f"/api/bindings/%2F/e/x-{n}/q/{_q(n)}", {"routing_key": "other"}
        ),
    ),
    HttpOperation(
        "bind exchange",
        frozenset({"write", "read"}),
        lambda h, n: h.call(
            "POST", f"/api/bindings/%2F/e/x-{n}/e/x2-{n}", {"routing_key": "other"}
        ),
    ),
    HttpOperation(
        "publish",
        frozenset({"write"}),
        lambda h, n: h.call(
            "POST",
            f"/api/exchanges/%2F/x-{n}/publish",
            {"routing_key": "k", "payload": "m", "payload_encoding": "string", "properties": {}},
        ),
        refused=400,
    ),
    HttpOperation(
        "get",
        frozenset({"read"}),
        lambda h, n: h.call(
            "POST",
            f"/api/queues/%2F/{_q(n)}/get",
            {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"},
        ),
    ),
]


@pytest.mark.parametrize("user", [u for u in USERS if u != "nothing"])
@pytest.mark.parametrize("op", HTTP_OPERATIONS, ids=lambda op: op.name)
def test_http(world: World, op: HttpOperation, user: str) -> None:
    n = uuid.uuid4().hex[:8]
    with world.amqp("full") as owner:
        setup = owner.channel()
        topology(setup, n)
        status, answer = op.act(world.http(user), n)
        granted = {k for k, p in zip(KINDS, USERS[user], strict=True) if p == ALL}
        if op.needs <= granted:
            assert 200 <= status < 300, (status, answer)
        elif op.refused == 400:
            assert status == 400, (status, answer)
            assert answer["reason"].startswith("403 ACCESS_REFUSED - access to ")
        else:
            assert status == 401, (status, answer)
            assert answer["error"] == "not_authorised"
            assert "refused for user" in answer["reason"]
        _cleanup(setup, n)
