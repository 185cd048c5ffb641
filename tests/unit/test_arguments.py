"""RabbitMQ's vocabulary to typed options: every ``x-*`` argument, good and bad values,
with RabbitMQ 3.10's texts (the integration tests pin the same texts over the wire)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from pigeon.core.options import QUORUM, ExchangeOptions, Overflow, PolicyOptions, QueueOptions
from pigeon.core.vhost import VirtualHost
from pigeon.errors import PreconditionFailed
from pigeon.operations.arguments import check_new_queue, exchange_options, queue_options
from pigeon.operations.policy_definitions import parse_limits, parse_policy
from pigeon.operations.vocabulary import RABBITMQ

WHERE = "for queue 'q' in vhost '/'"


def refusal(arguments: dict[str, Any]) -> str:
    with pytest.raises(PreconditionFailed) as refused:
        queue_options("q", "/", arguments)
    return refused.value.text


@pytest.mark.parametrize(
    ("arguments", "options"),
    [
        ({}, QueueOptions()),
        ({"x-message-ttl": 0}, QueueOptions(message_ttl=0)),
        ({"x-expires": 1}, QueueOptions(expires=1)),
        ({"x-max-length": 0}, QueueOptions(max_length=0)),
        ({"x-max-length-bytes": 10}, QueueOptions(max_length_bytes=10)),
        ({"x-overflow": "reject-publish"}, QueueOptions(overflow=Overflow.REJECT_PUBLISH)),
        (
            {"x-overflow": "reject-publish-dlx"},
            QueueOptions(overflow=Overflow.REJECT_PUBLISH_DLX),
        ),
        ({"x-dead-letter-exchange": ""}, QueueOptions(dead_letter_exchange="")),
        (
            {"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "k"},
            QueueOptions(dead_letter_exchange="dlx", dead_letter_routing_key="k"),
        ),
        ({"x-max-priority": 255}, QueueOptions(max_priority=255)),
        ({"x-single-active-consumer": True}, QueueOptions(single_active_consumer=True)),
        ({"x-queue-type": "quorum"}, QueueOptions(type=QUORUM)),
        ({"x-queue-type": "classic"}, QueueOptions()),
        ({"x-delivery-limit": 3}, QueueOptions(delivery_limit=3)),
        ({"x-delivery-limit": "3"}, QueueOptions()),  # not validated; only an integer counts
        (
            {"x-dead-letter-strategy": "at-least-once"},
            QueueOptions(dead_letter_strategy="at-least-once"),
        ),
        # Validated, kept and compared, but nothing to convert on one node.
        ({"x-queue-mode": "lazy", "x-queue-leader-locator": "balanced"}, QueueOptions()),
        ({"x-max-in-memory-length": 0, "x-quorum-initial-group-size": 3}, QueueOptions()),
        ({"x-foo": object()}, QueueOptions()),  # unknown: kept and ignored
    ],
)
def test_good_values(arguments: dict[str, Any], options: QueueOptions) -> None:
    converted = queue_options("q", "/", arguments)
    # ``explicit`` names what the table set (a policy yields to it): tested apart.
    assert replace(converted, explicit=frozenset()) == options


def test_explicit_names_the_declared_fields() -> None:
    declared = queue_options("q", "/", {"x-overflow": "drop-head", "x-max-length": 1, "x-q": 1})
    assert declared.explicit == {"overflow", "max_length"}
    assert queue_options("q", "/", {"x-delivery-limit": "3"}).explicit == frozenset()


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("x-message-ttl", -1, "{value_negative,-1}"),
        ("x-message-ttl", "1", '"expected integer, got longstr"'),
        ("x-message-ttl", True, '"expected integer, got bool"'),
        ("x-expires", 0, "{value_zero,0}"),
        ("x-expires", -5, "{value_negative,-5}"),
        ("x-max-length", -1, "{value_negative,-1}"),
        ("x-max-length-bytes", -1, "{value_negative,-1}"),
        ("x-max-length-bytes", 1.5, '"expected integer, got double"'),
        ("x-overflow", "bogus", "invalid_overflow"),
        ("x-overflow", 1, "invalid_overflow"),
        ("x-max-priority", 256, "{max_value_exceeded,256}"),
        ("x-max-priority", -1, "{value_negative,-1}"),
        ("x-single-active-consumer", "true", "{unacceptable_type,longstr}"),
        ("x-queue-type", "bogus", "\"unsupported queue type 'bogus'\""),
        ("x-queue-type", 1, "{unacceptable_type,signedint}"),
        ("x-queue-type", "stream", '{unsupported_queue_type,<<"stream">>}'),
        ("x-dead-letter-strategy", "bogus", "invalid_dlx_strategy"),
        ("x-dead-letter-strategy", 5, "{unacceptable_type,signedint}"),
        ("x-max-in-memory-length", -1, "{value_negative,-1}"),
        ("x-max-in-memory-bytes", -1, "{value_negative,-1}"),
        ("x-quorum-initial-group-size", 0, "{value_zero,0}"),
        ("x-queue-leader-locator", "nearest", "invalid_queue_locator_arg"),
    ],
)
def test_bad_values(key: str, value: object, problem: str) -> None:
    assert refusal({key: value}) == f"invalid arg '{key}' {WHERE}: {problem}"


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        ({"x-dead-letter-exchange": 5}, "x-dead-letter-exchange"),
        (
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": 5},
            "x-dead-letter-routing-key",
        ),
        ({"x-queue-mode": b"lazy"}, "x-queue-mode"),
    ],
)
def test_string_arguments(arguments: dict[str, Any], key: str) -> None:
    type_name = "binary" if key == "x-queue-mode" else "signedint"
    assert refusal(arguments) == (
        f"invalid type '{type_name}' for arg '{key}' in queue 'q' in vhost '/'"
    )


def test_a_routing_key_needs_an_exchange() -> None:
    assert refusal({"x-dead-letter-routing-key": "k"}) == (
        f"invalid arg 'x-dead-letter-routing-key' {WHERE}: routing_key_but_no_dlx_defined"
    )


def test_the_type_is_checked_first() -> None:
    assert "x-queue-type" in refusal({"x-message-ttl": -1, "x-queue-type": "bogus"})


def new_queue_refusal(arguments: dict[str, Any], **flags: bool) -> str:
    settings = {"generated": False, "durable": True, "exclusive": False, "auto_delete": False}
    with pytest.raises(PreconditionFailed) as refused:
        check_new_queue("q", "/", arguments, **{**settings, **flags})
    return refused.value.text


def test_each_type_takes_its_own_arguments() -> None:
    quorum = {"x-queue-type": "quorum"}
    assert new_queue_refusal({**quorum, "x-max-priority": 5}) == (
        "invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue"
    )
    assert new_queue_refusal({"x-delivery-limit": 5}) == (
        "invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type "
        "rabbit_classic_queue"
    )
    assert new_queue_refusal(quorum, generated=True) == (
        "Cannot declare a server-named queue for type rabbit_quorum_queue"
    )
    for flags, what in (
        ({"auto_delete": True, "exclusive": True}, "auto-delete"),
        ({"exclusive": True, "durable": False}, "exclusive-owner"),
        ({"durable": False}, "non-durable"),
    ):
        assert new_queue_refusal(quorum, **flags) == f"invalid property '{what}' {WHERE}"
    # A classic queue may be anything; an argument no type knows is no type's.
    check_new_queue(
        "q", "/", {"x-foo": 1}, generated=True, durable=False, exclusive=True, auto_delete=True
    )


def test_a_redeclare_is_compared_not_validated() -> None:
    """RabbitMQ compares a redeclare with the queue before it validates anything: an
    argument of another type, or a bad value, is not refused when it is not compared."""
    vhost = VirtualHost("/", _Clock(), vocabulary=RABBITMQ)
    queue = vhost.declare_queue("q", owner=None, arguments={"x-message-ttl": 5}).queue
    again = vhost.declare_queue(
        "q", owner=None, arguments={"x-message-ttl": 5, "x-delivery-limit": -1}
    )
    assert again.queue is queue
    with pytest.raises(PreconditionFailed) as refused:
        vhost.declare_queue("q", owner=None, arguments={"x-message-ttl": -1})
    assert refused.value.text == (
        f"inequivalent arg 'x-message-ttl' {WHERE}: received '-1' but current is '5'"
    )
    assert queue.arguments == {"x-message-ttl": 5}  # kept to report back


def test_exchange_options() -> None:
    assert exchange_options("x", "/", None) == ExchangeOptions()
    assert exchange_options("x", "/", {"alternate-exchange": "ae", "other": 1}) == (
        ExchangeOptions(alternate_exchange="ae")
    )
    with pytest.raises(PreconditionFailed) as refused:
        exchange_options("x", "v", {"alternate-exchange": b"ae"})
    assert refused.value.text == (
        "invalid type 'binary' for arg 'alternate-exchange' in exchange 'x' in vhost 'v'"
    )


def test_policy_definitions_become_options() -> None:
    policy = parse_policy(
        "/",
        "p",
        {
            "pattern": ".*",
            "definition": {
                "message-ttl": 5,
                "overflow": "reject-publish",
                "alternate-exchange": "ae",
                "queue-mode": "lazy",
            },
        },
    )
    assert policy.options == PolicyOptions(
        message_ttl=5,
        overflow=Overflow.REJECT_PUBLISH,
        alternate_exchange="ae",
        fits_quorum=False,  # queue-mode is classic only
    )
    assert policy.definition["queue-mode"] == "lazy"  # kept to report back


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"message-ttl": -1}, "-1 is not a valid message TTL"),
        ({"expires": 0}, "0 is not a valid queue expiry"),
        ({"max-length": "1"}, '<<"1">> is not a valid maximum length'),
        ({"delivery-limit": True}, "true is not a valid delivery limit"),
        ({"queue-version": 3}, "3 is not a valid queue-version value"),
        ({"dead-letter-exchange": 1}, "1 is not a valid dead letter exchange name"),
        ({"foo": [1, 2.5]}, '[{<<"foo">>,[1,2.5]}] are not recognised policy settings'),
        ({}, "no policy provided"),
    ],
)
def test_policy_refusals(definition: dict[str, Any], problem: str) -> None:
    with pytest.raises(PreconditionFailed) as refused:
        parse_policy("/", "p", {"pattern": ".*", "definition": definition})
    assert refused.value.text == f"Validation failed\n\n{problem}\n"


def test_limits() -> None:
    assert parse_limits({"max-queues": 2.0, "max-connections": -1}) == {
        "max-queues": 2,
        "max-connections": -1,
    }
    with pytest.raises(PreconditionFailed) as refused:
        parse_limits({"max-channels": 1})
    assert refused.value.text == (
        'Validation failed\n\nUnrecognised terms [{<<"max-channels">>,1}] in limits\n'
    )


def test_a_core_without_a_vocabulary_refuses_argument_tables() -> None:
    vhost = VirtualHost("/", _Clock())
    with pytest.raises(PreconditionFailed):
        vhost.declare_queue("q", owner=None, arguments={"x-max-length": 1})
    queue = vhost.declare_queue("q", owner=None, options=QueueOptions(max_length=1)).queue
    assert queue.args.max_length == 1 and queue.arguments == {}


class _Handle:
    def cancel(self) -> None:
        pass


class _Clock:
    """A Scheduler whose time stands still and whose timers never fire."""

    def time(self) -> float:
        return 0.0

    def call_later(self, delay: float, callback: Callable[[], object]) -> _Handle:
        return _Handle()

    def call_soon(self, callback: Callable[[], object]) -> _Handle:
        return _Handle()
