"""RabbitMQ's vocabulary: ``x-*`` argument tables and policy definitions to typed options.

Every entry point (AMQP declares, the HTTP API, definitions import, the embedded
API) speaks it, so it lives here, not in a protocol package; the core reads only
:mod:`pigeon.core.options`. RabbitMQ answers a bad value with 406
PRECONDITION_FAILED and a text such as ``invalid arg 'x-message-ttl' for queue 'q'
in vhost '/': {value_negative,-1}``; clients and people grep for these, so the
texts are RabbitMQ 3.10's, Erlang terms and all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from pigeon.core.exchange import Exchange, field_bytes, same_typed
from pigeon.core.options import (
    CLASSIC,
    QUORUM,
    ExchangeOptions,
    Overflow,
    QueueOptions,
)
from pigeon.core.queue import Queue
from pigeon.errors import PreconditionFailed
from pigeon.operations.terms import erlang_term, field_type

MAX_PRIORITY = 255
QUEUE_TYPES = (CLASSIC, QUORUM)
DEAD_LETTER_STRATEGIES = ("at-most-once", "at-least-once")
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders")
ALTERNATE_EXCHANGE = "alternate-exchange"

# -- queue arguments ---------------------------------------------------------------------


def _integer(value: object, minimum: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f'"expected integer, got {field_type(value)}"'
    if value < 0:
        return f"{{value_negative,{value}}}"
    if value < minimum:
        return f"{{value_zero,{value}}}"
    return None


def _overflow(value: object) -> str | None:
    if not isinstance(value, str) or value not in {o.value for o in Overflow}:
        return "invalid_overflow"
    return None


def _priority(value: object) -> str | None:
    problem = _integer(value, 0)
    if problem is None and isinstance(value, int) and value > MAX_PRIORITY:
        return f"{{max_value_exceeded,{value}}}"
    return problem


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else f"{{unacceptable_type,{field_type(value)}}}"


def _one_of(known: tuple[str, ...], problem: str) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, str):
            return None if value in known else problem
        return f"{{unacceptable_type,{field_type(value)}}}"

    return check


def _queue_type(value: object) -> str | None:
    if not isinstance(value, str):
        return f"{{unacceptable_type,{field_type(value)}}}"
    if value == "stream":
        # Known to RabbitMQ, not built here yet: say so rather than make something else.
        return '{unsupported_queue_type,<<"stream">>}'
    if value not in QUEUE_TYPES:
        return f"\"unsupported queue type '{value}'\""
    return None


_CHECKS: dict[str, Callable[[object], str | None]] = {
    "x-queue-type": _queue_type,  # first, as rabbit_amqqueue:check_declare_arguments
    "x-message-ttl": lambda v: _integer(v, 0),
    "x-expires": lambda v: _integer(v, 1),
    "x-max-length": lambda v: _integer(v, 0),
    "x-max-length-bytes": lambda v: _integer(v, 0),
    "x-overflow": _overflow,
    "x-max-priority": _priority,
    "x-single-active-consumer": _boolean,
    # Quorum queues' (a queue of another type refuses them before this check runs).
    "x-dead-letter-strategy": _one_of(DEAD_LETTER_STRATEGIES, "invalid_dlx_strategy"),
    "x-max-in-memory-length": lambda v: _integer(v, 0),
    "x-max-in-memory-bytes": lambda v: _integer(v, 0),
    "x-quorum-initial-group-size": lambda v: _integer(v, 1),
    "x-queue-leader-locator": _one_of(LEADER_LOCATORS, "invalid_queue_locator_arg"),
}
# Arguments whose *type* RabbitMQ checks, with a differently worded error.
_STRING_ARGUMENTS = ("x-dead-letter-exchange", "x-dead-letter-routing-key", "x-queue-mode")
# The arguments that set a QueueOptions field (``x-max-length`` -> ``max_length``). The
# others (x-queue-mode, -version, the locators and group sizes) change nothing on one
# node: they are validated, kept and compared, not converted.
# fmt: off
_CONVERTED = (
    "x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow",
    "x-max-priority", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-single-active-consumer", "x-delivery-limit", "x-dead-letter-strategy",
)
# fmt: on
_FIELDS = {"x-queue-type": "type"} | {key: key[2:].replace("-", "_") for key in _CONVERTED}


def queue_options(queue: str, vhost: str, arguments: Mapping[str, Any]) -> QueueOptions:
    """A queue's options from its declare arguments, or RabbitMQ's 406 text."""
    for key, check in _CHECKS.items():
        if key in arguments and (problem := check(arguments[key])) is not None:
            raise PreconditionFailed(
                f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {problem}"
            )
    for key in _STRING_ARGUMENTS:
        if key in arguments and not isinstance(arguments[key], str):
            raise PreconditionFailed(
                f"invalid type '{field_type(arguments[key])}' for arg '{key}' in queue "
                f"'{queue}' in vhost '{vhost}'"
            )
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        raise PreconditionFailed(
            f"invalid arg 'x-dead-letter-routing-key' for queue '{queue}' in vhost "
            f"'{vhost}': routing_key_but_no_dlx_defined"
        )
    values = {field: arguments[key] for key, field in _FIELDS.items() if key in arguments}
    limit = values.pop("delivery_limit", None)
    if isinstance(limit, int) and not isinstance(limit, bool):
        # Not validated by RabbitMQ 3.10; only an integer limits anything there.
        values["delivery_limit"] = limit
    if "overflow" in values:
        values["overflow"] = Overflow(values["overflow"])
    return QueueOptions(**values, explicit=frozenset(values))


# Each type's queue arguments (the ``queue_arguments`` of its ``capabilities/0``); they
# are also the ones compared when a queue is declared again.
# fmt: off
CLASSIC_ARGUMENTS = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
    "x-queue-version", "x-single-active-consumer", "x-queue-type", "x-queue-master-locator",
)
QUORUM_ARGUMENTS = (
    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
    "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
    "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
    "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
    "x-queue-leader-locator",
)
_STREAM_ARGUMENTS = (
    "x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size", "x-queue-leader-locator",
)
# fmt: on
_ACCEPTED = {CLASSIC: frozenset(CLASSIC_ARGUMENTS), QUORUM: frozenset(QUORUM_ARGUMENTS)}
# An argument no type knows (``x-foo``) is kept and ignored, as in RabbitMQ.
_KNOWN = frozenset((*CLASSIC_ARGUMENTS, *QUORUM_ARGUMENTS, *_STREAM_ARGUMENTS))
# How RabbitMQ names each type in its error texts.
_MODULES = {CLASSIC: "rabbit_classic_queue", QUORUM: "rabbit_quorum_queue"}


def check_new_queue(
    name: str,
    vhost: str,
    arguments: Mapping[str, Any],
    *,
    generated: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> None:
    """Refuse, as RabbitMQ does, a new queue its type cannot be: an argument only another
    type takes (``x-max-priority`` on a quorum queue), or a quorum queue that is not
    durable, is exclusive or auto-delete, or has a server-generated name."""
    kind = arguments.get("x-queue-type", CLASSIC)
    if kind not in _ACCEPTED:
        return  # queue_options refuses it, in its own words
    where = f"queue '{name}' in vhost '{vhost}'"
    for key in arguments:
        if key in _KNOWN and key not in _ACCEPTED[kind]:
            raise PreconditionFailed(
                f"invalid arg '{key}' for {where} of queue type {_MODULES[kind]}"
            )
    if kind != QUORUM:
        return
    if generated:
        raise PreconditionFailed(f"Cannot declare a server-named queue for type {_MODULES[kind]}")
    # In rabbit_quorum_queue:declare's order.
    for refused, what in (
        (auto_delete, "auto-delete"),
        (exclusive, "exclusive-owner"),
        (not durable, "non-durable"),
    ):
        if refused:
            raise PreconditionFailed(f"invalid property '{what}' for {where}")


# -- equivalence on redeclare ---------------------------------------------------------------


def _flag(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flags(where: str, fields: Iterable[tuple[str, object, object]]) -> str | None:
    for field, current, received in fields:
        if current != received:
            return (
                f"inequivalent arg '{field}' {where}: "
                f"received '{_flag(received)}' but current is '{_flag(current)}'"
            )
    return None


def queue_inequivalence(
    queue: Queue, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
) -> str | None:
    """Why a redeclare differs, or None (exclusivity is an owner check, not this)."""
    where = f"for queue '{queue.name}' in vhost '{queue.vhost}'"
    problem = _flags(
        where,
        (("durable", queue.durable, durable), ("auto_delete", queue.auto_delete, auto_delete)),
    )
    if problem is not None:
        return problem
    for key in QUORUM_ARGUMENTS if queue.type == QUORUM else CLASSIC_ARGUMENTS:
        if key == "x-queue-type" and queue.type == arguments.get(key, CLASSIC) == CLASSIC:
            continue  # no type is classic (RabbitMQ 3.10 accepts either)
        problem = argument_inequivalence(queue.arguments, arguments, key, where)
        if problem is not None:
            return problem
    return None


def exchange_inequivalence(
    exchange: Exchange,
    vhost: str,
    type: str,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    arguments: Mapping[str, Any] | None,
) -> str | None:
    """RabbitMQ's 406 text for a redeclare that differs, or None if it matches.

    As ``rabbit_exchange:assert_equivalence``: type, durable, auto_delete and
    internal in that order, then of the arguments only ``alternate-exchange``
    (the others are not compared at all).
    """
    where = f"for exchange '{exchange.name}' in vhost '{vhost}'"
    problem = _flags(
        where,
        (
            ("type", exchange.type, type),
            ("durable", exchange.durable, durable),
            ("auto_delete", exchange.auto_delete, auto_delete),
            ("internal", exchange.internal, internal),
        ),
    )
    if problem is not None:
        return problem
    return argument_inequivalence(exchange.arguments, arguments or {}, ALTERNATE_EXCHANGE, where)


def exchange_options(name: str, vhost: str, arguments: Mapping[str, Any] | None) -> ExchangeOptions:
    """A new exchange's options, or RabbitMQ's 406 text. Only ``alternate-exchange`` is
    checked: it must be a longstr. (On a redeclare RabbitMQ compares before it
    validates, so an equal byte string there passes.)"""
    alternate = (arguments or {}).get(ALTERNATE_EXCHANGE)
    if ALTERNATE_EXCHANGE in (arguments or {}) and not isinstance(alternate, str):
        raise PreconditionFailed(
            f"invalid type '{field_type(alternate)}' for arg "
            f"'{ALTERNATE_EXCHANGE}' in exchange '{name}' in vhost '{vhost}'"
        )
    return ExchangeOptions(alternate_exchange=alternate)


_MISSING = object()


def argument_inequivalence(
    current: Mapping[str, Any], received: Mapping[str, Any], key: str, where: str
) -> str | None:
    """As ``rabbit_misc:assert_args_equivalence`` for one key."""
    old = current.get(key, _MISSING)
    new = received.get(key, _MISSING)
    if old is _MISSING and new is _MISSING:
        return None
    if old is not _MISSING and new is not _MISSING:
        if _same_argument(old, new):
            return None
        shown_new, shown_old = f"'{_plain(new)}'", f"'{_plain(old)}'"
    else:
        shown_new, shown_old = _described(new), _described(old)
    return f"inequivalent arg '{key}' {where}: received {shown_new} but current is {shown_old}"


def _same_argument(old: Any, new: Any) -> bool:
    # The same type class and value, or byte-for-byte the same value (which
    # lets a longstr equal a byte array).
    if isinstance(old, str | bytes) and isinstance(new, str | bytes):
        return field_bytes(old) == field_bytes(new)
    if _type_class(old) != _type_class(new):
        return False
    return same_typed(old, new) if isinstance(old, dict | list | Decimal) else bool(old == new)


def _type_class(value: Any) -> str:
    name = field_type(value)
    if name in ("byte", "short", "signedint", "long", "decimal"):
        return "int"
    return "float" if name in ("float", "double") else name


def _described(value: Any) -> str:
    if value is _MISSING:
        return "none"
    return f"the value '{_plain(value)}' of type '{field_type(value)}'"


def _plain(value: Any) -> str:
    """Erlang's ``~s`` for a binary, ``~p`` for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return erlang_term(value)


_X_MATCH = ("all", "any", "all-with-x", "any-with-x")


def binding_problem(exchange_type: str, arguments: Mapping[str, Any]) -> str | None:
    """RabbitMQ's refusal of a headers binding's ``x-match`` (other types take any)."""
    if exchange_type != "headers" or "x-match" not in arguments:
        return None
    mode = arguments["x-match"]
    if not isinstance(mode, str):
        return (
            f"Invalid x-match field type {field_type(mode)} "
            f"(value {erlang_term(mode)}); expected longstr"
        )
    if mode not in _X_MATCH:
        return (
            f"Invalid x-match field value {erlang_term(mode)}; "
            "expected all, any, all-with-x, or any-with-x"
        )
    return None
