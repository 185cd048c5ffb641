"""Exchanges as a client sees them (amqp0-9-1 §3.1.3, class exchange).

Declaration rules, predeclared exchanges, routing by type, exchange-to-exchange
bindings, alternate and internal exchanges, and the reply codes RabbitMQ uses.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from helpers import await_channel_close, drain_all
from pika.adapters.blocking_connection import BlockingChannel


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> BlockingChannel:
    return connection.channel()


def queue_for(
    channel: BlockingChannel, exchange: str, routing_key: str = "", **args: object
) -> str:
    """A new exclusive, server-named queue bound to ``exchange``."""
    queue: str = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key, arguments=args or None)
    return queue


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_every_type(channel: BlockingChannel, uid: str, kind: str) -> None:
    name = f"ex-{kind}-{uid}"
    ok = channel.exchange_declare(name, kind, auto_delete=True)
    assert isinstance(ok.method, pika.spec.Exchange.DeclareOk)
    # Same arguments again is fine (amqp0-9-1: declare is idempotent).
    channel.exchange_declare(name, kind, auto_delete=True)
    channel.exchange_declare(name, passive=True)
    channel.exchange_delete(name)


def test_passive_declare_of_missing_exchange_is_not_found(
    channel: BlockingChannel, uid: str
) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.exchange_declare(f"missing-{uid}", passive=True)
    assert caught.value.reply_code == 404
    assert caught.value.reply_text == f"NOT_FOUND - no exchange 'missing-{uid}' in vhost '/'"


@pytest.mark.parametrize(
    ("second", "arg"),
    [({"exchange_type": "fanout"}, "type"), ({"durable": True}, "durable")],
)
def test_redeclare_with_other_settings_is_precondition_failed(
    channel: BlockingChannel, uid: str, second: dict[str, object], arg: str
) -> None:
    name = f"redeclare-{uid}"
    channel.exchange_declare(name, "direct", auto_delete=True)
    settings: dict[str, object] = {"exchange_type": "direct", "auto_delete": True, **second}
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.exchange_declare(name, **settings)
    assert caught.value.reply_code == 406
    assert f"inequivalent arg '{arg}'" in caught.value.reply_text


def test_declare_with_reserved_amq_prefix_is_access_refused(
    channel: BlockingChannel, uid: str
) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.exchange_declare(f"amq.foo-{uid}", "direct")
    assert caught.value.reply_code == 403
    assert "ACCESS_REFUSED" in caught.value.reply_text


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ],
)
def test_predeclared_exchanges_exist(channel: BlockingChannel, name: str, kind: str) -> None:
    channel.exchange_declare(name, passive=True)
    # Redeclaring a predeclared exchange with its own settings is allowed.
    channel.exchange_declare(name, kind, durable=True)


def test_predeclared_exchange_cannot_be_deleted(channel: BlockingChannel) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.exchange_delete("amq.direct")
    assert caught.value.reply_code == 403


def test_delete_exchange(connection: pika.BlockingConnection, uid: str) -> None:
    channel = connection.channel()
    name = f"to-delete-{uid}"
    channel.exchange_declare(name, "fanout")
    channel.exchange_delete(name)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.exchange_declare(name, passive=True)
    assert caught.value.reply_code == 404
    # Deleting a missing exchange is not an error on RabbitMQ 3.x.
    connection.channel().exchange_delete(f"never-existed-{uid}")


def test_delete_if_unused_on_bound_exchange(channel: BlockingChannel, uid: str) -> None:
    name = f"in-use-{uid}"
    channel.exchange_declare(name, "fanout", auto_delete=False)
    queue_for(channel, name)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.exchange_delete(name, if_unused=True)
        assert caught.value.reply_code == 406
        assert "in use" in caught.value.reply_text
    finally:
        channel.connection.channel().exchange_delete(name)


def test_delete_if_unused_on_unbound_exchange(channel: BlockingChannel, uid: str) -> None:
    name = f"unused-{uid}"
    channel.exchange_declare(name, "fanout")
    channel.exchange_delete(name, if_unused=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        channel.exchange_declare(name, passive=True)


def test_publish_to_internal_exchange_is_refused(
    connection: pika.BlockingConnection, uid: str
) -> None:
    channel = connection.channel()
    name = f"internal-{uid}"
    channel.exchange_declare(name, "fanout", internal=True, auto_delete=True)
    queue_for(channel, name)
    error = await_channel_close(channel, lambda: channel.basic_publish(name, "", b"x"))
    assert error.reply_code == 403
    assert "internal exchange" in error.reply_text


def test_internal_exchange_receives_through_exchange_binding(
    channel: BlockingChannel, uid: str
) -> None:
    front, inner = f"front-{uid}", f"inner-{uid}"
    channel.exchange_declare(front, "fanout", auto_delete=True)
    channel.exchange_declare(inner, "fanout", internal=True, auto_delete=True)
    channel.exchange_bind(inner, front)
    queue = queue_for(channel, inner)
    channel.basic_publish(front, "", b"through")
    assert drain_all(channel, queue) == [b"through"]


def test_exchange_to_exchange_bind_and_unbind(channel: BlockingChannel, uid: str) -> None:
    source, destination = f"e2e-src-{uid}", f"e2e-dst-{uid}"
    channel.exchange_declare(source, "direct", auto_delete=True)
    channel.exchange_declare(destination, "fanout", auto_delete=True)
    queue = queue_for(channel, destination)
    queue_for(channel, source, "anchor")  # keeps the auto-delete source alive after unbind
    channel.basic_publish(source, "key", b"before bind")
    channel.exchange_bind(destination, source, "key")
    channel.basic_publish(source, "other", b"wrong key")
    channel.basic_publish(source, "key", b"bound")
    assert drain_all(channel, queue) == [b"bound"]
    channel.exchange_unbind(destination, source, "key")
    channel.basic_publish(source, "key", b"after unbind")
    assert drain_all(channel, queue) == []


def test_exchange_binding_cycle_delivers_once(channel: BlockingChannel, uid: str) -> None:
    first, second = f"cycle-a-{uid}", f"cycle-b-{uid}"
    channel.exchange_declare(first, "fanout", auto_delete=True)
    channel.exchange_declare(second, "fanout", auto_delete=True)
    channel.exchange_bind(second, first)
    channel.exchange_bind(first, second)
    queue = queue_for(channel, first)
    queue_for(channel, second)
    channel.basic_publish(first, "", b"once")
    assert drain_all(channel, queue) == [b"once"]


def test_alternate_exchange_gets_unroutable_messages(channel: BlockingChannel, uid: str) -> None:
    main, alternate = f"main-{uid}", f"alt-{uid}"
    channel.exchange_declare(alternate, "fanout", auto_delete=True)
    channel.exchange_declare(
        main, "direct", auto_delete=True, arguments={"alternate-exchange": alternate}
    )
    routed = queue_for(channel, main, "known")
    fallback = queue_for(channel, alternate)
    channel.basic_publish(main, "known", b"routed")
    channel.basic_publish(main, "unknown", b"unroutable")
    assert drain_all(channel, routed) == [b"routed"]
    assert drain_all(channel, fallback) == [b"unroutable"]


# Which routing keys each binding pattern matches, as observed on RabbitMQ 3.10.
# An empty routing key has no words: only "#" (and the literal "") match it.
TOPIC_KEYS = ["", "a", "b", "a.b", "b.a", "a.c", "a.b.c", "a.b.b.c", "a..c", ".", "x.a.b.y"]
TOPIC_MATCHES = {
    "*": ["a", "b"],
    "#": TOPIC_KEYS,
    "": [""],
    "a": ["a"],
    "a.b": ["a.b"],
    "a.*": ["a.b", "a.c"],
    "a.#": ["a", "a.b", "a.c", "a.b.c", "a.b.b.c", "a..c"],
    "#.a": ["a", "b.a"],
    "*.a": ["b.a"],
    "a.*.c": ["a.b.c", "a..c"],
    "a.#.c": ["a.c", "a.b.c", "a.b.b.c", "a..c"],
    "a.#.#.c": ["a.c", "a.b.c", "a.b.b.c", "a..c"],
    "#.#": TOPIC_KEYS,
    "*.#": TOPIC_KEYS[1:],
    "#.*": TOPIC_KEYS[1:],
    "*.*": ["a.b", "b.a", "a.c", "."],
    "#.b.#": ["b", "a.b", "b.a", "a.b.c", "a.b.b.c", "x.a.b.y"],
}


def test_topic_routing(channel: BlockingChannel, uid: str) -> None:
    exchange = f"topic-{uid}"
    channel.exchange_declare(exchange, "topic", auto_delete=True)
    queues = {pattern: queue_for(channel, exchange, pattern) for pattern in TOPIC_MATCHES}
    for key in TOPIC_KEYS:
        channel.basic_publish(exchange, key, key.encode())
    for pattern, expected in TOPIC_MATCHES.items():
        got = [body.decode() for body in drain_all(channel, queues[pattern])]
        assert got == expected, f"pattern {pattern!r}"


def test_topic_unbind_stops_routing(channel: BlockingChannel, uid: str) -> None:
    exchange = f"topic-unbind-{uid}"
    channel.exchange_declare(exchange, "topic", auto_delete=True)
    queue = queue_for(channel, exchange, "a.*")
    channel.queue_bind(queue, exchange, "#.z")
    channel.basic_publish(exchange, "a.z", b"both bindings, one copy")
    channel.queue_unbind(queue, exchange, "a.*")
    channel.basic_publish(exchange, "a.b", b"unbound")
    channel.basic_publish(exchange, "q.z", b"still bound")
    assert drain_all(channel, queue) == [b"both bindings, one copy", b"still bound"]


def test_headers_exchange_all_and_any(channel: BlockingChannel, uid: str) -> None:
    exchange = f"headers-{uid}"
    channel.exchange_declare(exchange, "headers", auto_delete=True)
    match_all = queue_for(
        channel, exchange, "", **{"x-match": "all", "fmt": "pdf", "kind": "report"}
    )
    match_any = queue_for(
        channel, exchange, "", **{"x-match": "any", "fmt": "pdf", "kind": "report"}
    )
    default = queue_for(channel, exchange, "", fmt="pdf", kind="report")  # x-match defaults to all
    cases = [
        ({"fmt": "pdf", "kind": "report"}, b"both"),
        ({"fmt": "pdf", "kind": "report", "extra": 1}, b"both plus extra"),
        ({"fmt": "pdf"}, b"one"),
        ({"fmt": "pdf", "kind": "log"}, b"one right one wrong"),
        ({"other": "pdf"}, b"none"),
        (None, b"no headers"),
    ]
    for headers, body in cases:
        # The routing key is ignored by a headers exchange.
        channel.basic_publish(exchange, "ignored", body, pika.BasicProperties(headers=headers))
    assert drain_all(channel, match_all) == [b"both", b"both plus extra"]
    assert drain_all(channel, default) == [b"both", b"both plus extra"]
    assert drain_all(channel, match_any) == [
        b"both",
        b"both plus extra",
        b"one",
        b"one right one wrong",
    ]


def test_headers_exchange_matches_typed_values(channel: BlockingChannel, uid: str) -> None:
    exchange = f"headers-typed-{uid}"
    channel.exchange_declare(exchange, "headers", auto_delete=True)
    queue = queue_for(channel, exchange, "", **{"x-match": "all", "n": 42})
    channel.basic_publish(exchange, "", b"int", pika.BasicProperties(headers={"n": 42}))
    channel.basic_publish(exchange, "", b"other int", pika.BasicProperties(headers={"n": 43}))
    assert drain_all(channel, queue) == [b"int"]


def test_direct_and_fanout_routing(channel: BlockingChannel, uid: str) -> None:
    direct, fanout = f"direct-{uid}", f"fanout-{uid}"
    channel.exchange_declare(direct, "direct", auto_delete=True)
    channel.exchange_declare(fanout, "fanout", auto_delete=True)
    red = queue_for(channel, direct, "red")
    channel.queue_bind(red, direct, "crimson")
    blue = queue_for(channel, direct, "blue")
    everyone = [queue_for(channel, fanout, "anything"), queue_for(channel, fanout)]
    for key in ("red", "blue", "crimson", "green"):
        channel.basic_publish(direct, key, key.encode())
        channel.basic_publish(fanout, key, key.encode())
    assert drain_all(channel, red) == [b"red", b"crimson"]
    assert drain_all(channel, blue) == [b"blue"]
    for queue in everyone:
        assert drain_all(channel, queue) == [b"red", b"blue", b"crimson", b"green"]


def test_unknown_exchange_type_closes_the_connection(
    connection: pika.BlockingConnection, uid: str
) -> None:
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
        channel.exchange_declare(f"weird-{uid}", "no-such-type")
    assert caught.value.reply_code == 503
    assert "unknown exchange type 'no-such-type'" in caught.value.reply_text
    assert connection.is_closed


def test_publish_to_missing_exchange_closes_the_channel(
    connection: pika.BlockingConnection, uid: str
) -> None:
    channel = connection.channel()
    error = await_channel_close(
        channel, lambda: channel.basic_publish(f"missing-{uid}", "rk", b"x")
    )
    assert error.reply_code == 404
    assert error.reply_text == f"NOT_FOUND - no exchange 'missing-{uid}' in vhost '/'"
    assert connection.is_open
    assert connection.channel().is_open


def test_default_exchange_routes_by_queue_name(channel: BlockingChannel, uid: str) -> None:
    queue = f"by-name-{uid}"
    channel.queue_declare(queue, exclusive=True)
    channel.basic_publish("", queue, b"direct to queue")
    channel.basic_publish("", f"no-queue-{uid}", b"dropped")
    assert drain_all(channel, queue) == [b"direct to queue"]


def test_binding_to_default_exchange_is_access_refused(channel: BlockingChannel, uid: str) -> None:
    queue = f"bind-default-{uid}"
    channel.queue_declare(queue, exclusive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.queue_bind(queue, "", "some-key")
    assert caught.value.reply_code == 403
    assert caught.value.reply_text == (
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    )


def test_declaring_the_default_exchange_is_access_refused(channel: BlockingChannel) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.exchange_declare("", "direct", durable=True)
    assert caught.value.reply_code == 403
