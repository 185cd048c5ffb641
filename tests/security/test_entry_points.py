"""One table of rules, run over every entry point: AMQP (pika), the HTTP API, the
embedded API (``broker.as_user``).

Each row is an operation, the permissions it needs and how each entry point asks
for it; every (row, user, entry point) must be allowed or refused alike, since
all three call the same operations layer (issue 12). A refusal is answered in
each entry point's terms: AMQP closes the channel with 403, the HTTP API answers
401 (400 with the AMQP code for a publish, as RabbitMQ 3.10's API does), the
embedded API raises ``AccessRefused``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import pytest
from permission_world import ALL, KINDS, Http, World, topology
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.embedded.sync import SyncAPI
from pigeon.errors import AccessRefused, NotFound, PreconditionFailed

USERS = {
    "full": (ALL, ALL, ALL),
    "lacks-configure": ("^$", ALL, ALL),
    "lacks-write": (ALL, "^$", ALL),
    "lacks-read": (ALL, ALL, "^$"),
}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        admin = Http(broker.management_url.rstrip("/"), "guest", "guest")
        here = World(broker, admin, f"ep{uuid.uuid4().hex[:6]}")
        for user, (configure, write, read) in USERS.items():
            name = here.name(user)
            tags = "management,impersonator" if user == "full" else "management"
            status, _ = admin.call("PUT", f"/api/users/{name}", {"password": "pw", "tags": tags})
            assert status == 201
            permissions = {"configure": configure, "write": write, "read": read}
            assert admin.call("PUT", f"/api/permissions/%2F/{name}", permissions)[0] in (201, 204)
        yield here


def embedded(world: World, user: str) -> SyncAPI:
    return world.broker.as_user(world.name(user)).sync


Amqp = Callable[[BlockingChannel, str], Any]
Web = Callable[[Http, str], tuple[int, Any]]
Embedded = Callable[[SyncAPI, str], Any]


@dataclass(frozen=True)
class Row:
    name: str
    needs: frozenset[str]
    amqp: Amqp
    http: Web | None  # None: the HTTP API has no such action
    embedded: Embedded
    http_refusal: int = 401


DLX_ARGS = {"x-dead-letter-exchange": "amq.fanout"}
PUBLISH_BODY = {"routing_key": "k", "payload": "m", "payload_encoding": "string", "properties": {}}
GET_BODY = {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}

TABLE = [
    Row(
        "declare exchange",
        frozenset({"configure"}),
        lambda ch, n: ch.exchange_declare(f"new-x-{n}", "direct"),
        lambda h, n: h.call("PUT", f"/api/exchanges/%2F/new-x-{n}", {"type": "direct"}),
        lambda api, n: api.declare_exchange(f"new-x-{n}", "direct"),
    ),
    Row(
        "delete exchange",
        frozenset({"configure"}),
        lambda ch, n: ch.exchange_delete(f"x2-{n}"),
        lambda h, n: h.call("DELETE", f"/api/exchanges/%2F/x2-{n}"),
        lambda api, n: api.delete_exchange(f"x2-{n}"),
    ),
    Row(
        "declare queue",
        frozenset({"configure"}),
        lambda ch, n: ch.queue_declare(f"new-q-{n}"),
        lambda h, n: h.call("PUT", f"/api/queues/%2F/new-q-{n}", {}),
        lambda api, n: api.declare_queue(f"new-q-{n}"),
    ),
    Row(
        "declare queue with a dead-letter exchange",
        frozenset({"configure", "write", "read"}),
        lambda ch, n: ch.queue_declare(f"dlx-q-{n}", arguments=DLX_ARGS),
        lambda h, n: h.call("PUT", f"/api/queues/%2F/dlx-q-{n}", {"arguments": DLX_ARGS}),
        lambda api, n: api.declare_queue(f"dlx-q-{n}", arguments=DLX_ARGS),
    ),
    Row(
        "delete queue",
        frozenset({"configure"}),
        lambda ch, n: ch.queue_delete(f"q-{n}"),
        lambda h, n: h.call("DELETE", f"/api/queues/%2F/q-{n}"),
        lambda api, n: api.delete_queue(f"q-{n}"),
    ),
    Row(
        "purge",
        frozenset({"read"}),
        lambda ch, n: ch.queue_purge(f"q-{n}"),
        lambda h, n: h.call("DELETE", f"/api/queues/%2F/q-{n}/contents"),
        lambda api, n: api.purge(f"q-{n}"),
    ),
    Row(
        "bind",
        frozenset({"write", "read"}),
        lambda ch, n: ch.queue_bind(f"q-{n}", f"x-{n}", "other"),
        lambda h, n: h.call("POST", f"/api/bindings/%2F/e/x-{n}/q/q-{n}", {"routing_key": "o"}),
        lambda api, n: api.bind(f"q-{n}", f"x-{n}", "other"),
    ),
    Row(
        "unbind",
        frozenset({"write", "read"}),
        lambda ch, n: ch.queue_unbind(f"q-{n}", f"x-{n}", "k"),
        lambda h, n: h.call("DELETE", f"/api/bindings/%2F/e/x-{n}/q/q-{n}/k"),
        lambda api, n: api.unbind(f"q-{n}", f"x-{n}", "k"),
    ),
    Row(
        "publish",
        frozenset({"write"}),
        lambda ch, n: ch.basic_publish(f"x-{n}", "k", b"m"),
        lambda h, n: h.call("POST", f"/api/exchanges/%2F/x-{n}/publish", PUBLISH_BODY),
        lambda api, n: api.publish(f"x-{n}", "k", "m"),
        http_refusal=400,
    ),
    Row(
        "get",
        frozenset({"read"}),
        lambda ch, n: ch.basic_get(f"q-{n}"),
        lambda h, n: h.call("POST", f"/api/queues/%2F/q-{n}/get", GET_BODY),
        lambda api, n: api.get(f"q-{n}"),
    ),
    Row(
        "consume",
        frozenset({"read"}),
        lambda ch, n: ch.basic_consume(f"q-{n}", lambda *a: None),
        None,
        lambda api, n: api.consume(f"q-{n}", timeout=1),
    ),
]


def _allowed(row: Row, user: str) -> bool:
    granted = {k for k, pattern in zip(KINDS, USERS[user], strict=True) if pattern == ALL}
    return row.needs <= granted


def _cleanup(world: World, n: str) -> None:
    with world.amqp("full") as connection:
        ch = connection.channel()
        for queue in (f"q-{n}", f"new-q-{n}", f"dlx-q-{n}"):
            ch.queue_delete(queue)
        for exchange in (f"x-{n}", f"x2-{n}", f"new-x-{n}"):
            ch.exchange_delete(exchange)


@pytest.fixture
def n(world: World) -> Iterator[str]:
    """A fresh topology (made by the user with every permission), removed afterwards."""
    name = uuid.uuid4().hex[:8]
    with world.amqp("full") as connection:
        topology(connection.channel(), name)
    yield name
    _cleanup(world, name)


def _amqp(world: World, row: Row, user: str, n: str) -> None:
    with world.amqp(user) as connection:
        channel = connection.channel()
        channel.confirm_delivery()  # so a refused publish is answered before we look
        if _allowed(row, user):
            row.amqp(channel, n)
            assert channel.is_open
            return
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            row.amqp(channel, n)
            connection.process_data_events(time_limit=0.2)
    assert refused.value.reply_code == 403
    assert f"refused for user '{world.name(user)}'" in refused.value.reply_text


def _http(world: World, row: Row, user: str, n: str) -> None:
    assert row.http is not None
    status, answer = row.http(world.http(user), n)
    if _allowed(row, user):
        assert 200 <= status < 300, (status, answer)
    elif row.http_refusal == 400:
        assert status == 400, (status, answer)
        assert answer["reason"].startswith("403 ACCESS_REFUSED - access to "), answer
    else:
        assert status == 401, (status, answer)
        assert answer["error"] == "not_authorised"
        assert f"refused for user '{world.name(user)}'" in answer["reason"]


def _embedded(world: World, row: Row, user: str, n: str) -> None:
    api = embedded(world, user)
    if _allowed(row, user):
        row.embedded(api, n)
        return
    with pytest.raises(AccessRefused) as refused:
        row.embedded(api, n)
    assert f"refused for user '{world.name(user)}'" in refused.value.text


ENTRY_POINTS = {"amqp": _amqp, "http": _http, "embedded": _embedded}
CASES = [
    pytest.param(row, user, entry, id=f"{row.name}-{user}-{entry}")
    for row in TABLE
    for user in USERS
    for entry in ENTRY_POINTS
    if not (entry == "http" and row.http is None)
]


@pytest.mark.parametrize(("row", "user", "entry"), CASES)
def test_same_rule_at_every_entry_point(
    world: World, n: str, row: Row, user: str, entry: str
) -> None:
    ENTRY_POINTS[entry](world, row, user, n)


# -- the reproduction of issue 12 -------------------------------------------------------


def test_dead_letter_exchange_needs_write_over_amqp(world: World) -> None:
    """Without write on ``amq.fanout``, no queue may dead-letter into it: 403."""
    with world.amqp("lacks-write") as connection:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare(f"q-{uuid.uuid4().hex[:8]}", arguments=DLX_ARGS)
    assert refused.value.reply_code == 403
    assert refused.value.reply_text == (
        f"ACCESS_REFUSED - access to exchange 'amq.fanout' in vhost '/' refused for user "
        f"'{world.name('lacks-write')}'"
    )


def test_dead_letter_exchange_needs_write_over_http(world: World) -> None:
    """``PUT /api/queues/%2F/q``: RabbitMQ 3.10.8's API answers 401 not_authorised
    (checked against a private RabbitMQ node); it used to be 201 here."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    status, answer = world.http("lacks-write").call(
        "PUT", f"/api/queues/%2F/{name}", {"durable": True, "arguments": DLX_ARGS}
    )
    assert (status, answer["error"]) == (401, "not_authorised")
    assert "access to exchange 'amq.fanout' in vhost '/' refused" in answer["reason"]
    assert world.admin.call("GET", f"/api/queues/%2F/{name}")[0] == 404


def test_dead_letter_exchange_needs_write_through_the_embedded_api(world: World) -> None:
    name = f"q-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AccessRefused) as refused:
        embedded(world, "lacks-write").declare_queue(name, arguments=DLX_ARGS)
    assert "access to exchange 'amq.fanout' in vhost '/' refused" in refused.value.text
    with pytest.raises(NotFound):  # nothing was declared
        world.broker.sync.queue(name)


# -- rules that are not permissions --------------------------------------------------------


def test_user_id_must_be_the_users_own_everywhere(world: World, n: str) -> None:
    """406 unless the user has the impersonator tag ("full" has it here)."""
    user = "lacks-configure"
    with world.amqp(user) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(f"x-{n}", "k", b"m", pika.BasicProperties(user_id="mallory"))
    assert refused.value.reply_code == 406
    body = {**PUBLISH_BODY, "properties": {"user_id": "mallory"}}
    status, answer = world.http(user).call("POST", f"/api/exchanges/%2F/x-{n}/publish", body)
    assert status == 400
    assert answer["reason"].startswith("406 PRECONDITION_FAILED - user_id property set to")
    with pytest.raises(PreconditionFailed):
        embedded(world, user).publish(f"x-{n}", "k", "m", user_id="mallory")
    # The impersonator may publish as anyone, at every entry point.
    with world.amqp("full") as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(f"x-{n}", "k", b"m", pika.BasicProperties(user_id="mallory"))
    assert world.http("full").call("POST", f"/api/exchanges/%2F/x-{n}/publish", body)[0] == 200
    assert embedded(world, "full").publish(f"x-{n}", "k", "m", user_id="mallory") == 1


def test_no_publish_to_an_internal_exchange_anywhere(world: World) -> None:
    name = f"ix-{uuid.uuid4().hex[:8]}"
    world.broker.sync.declare_exchange(name, "fanout", internal=True)
    try:
        with world.amqp("full") as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                channel.basic_publish(name, "", b"m")
        assert refused.value.reply_code == 403
        status, answer = world.http("full").call(
            "POST", f"/api/exchanges/%2F/{name}/publish", {**PUBLISH_BODY, "routing_key": ""}
        )
        # RabbitMQ 3.10.8: 400 "403 ACCESS_REFUSED - cannot publish to internal exchange..."
        assert status == 400
        assert answer["reason"].startswith("403 ACCESS_REFUSED - cannot publish to internal")
        with pytest.raises(AccessRefused, match="internal exchange"):
            embedded(world, "full").publish(name, "", "m")
        with pytest.raises(AccessRefused, match="internal exchange"):
            world.broker.sync.publish(name, "", "m")  # the program's own API too
    finally:
        world.broker.sync.delete_exchange(name)
