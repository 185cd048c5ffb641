"""Validation of queue arguments (``x-*``), with RabbitMQ's error texts.

RabbitMQ answers a bad argument with 406 PRECONDITION_FAILED and a text such
as ``invalid arg 'x-message-ttl' for queue 'q' in vhost '/':
{value_negative,-1}``; clients and people grep for these, so we keep them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pigeon.core.binding import field_type
from pigeon.errors import PreconditionFailed


class Overflow(StrEnum):
    DROP_HEAD = "drop-head"
    REJECT_PUBLISH = "reject-publish"
    REJECT_PUBLISH_DLX = "reject-publish-dlx"


MAX_PRIORITY = 255
QUEUE_TYPES = ("classic", "quorum")
DEAD_LETTER_STRATEGIES = ("at-most-once", "at-least-once")
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders")


def type_name(value: object) -> str:
    """The AMQP table type RabbitMQ would name for a value, for error texts."""
    return field_type(value)


def _integer(value: object, minimum: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f'"expected integer, got {type_name(value)}"'
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
    return None if isinstance(value, bool) else f"{{unacceptable_type,{type_name(value)}}}"


def _one_of(known: tuple[str, ...], problem: str) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, str):
            return None if value in known else problem
        return f"{{unacceptable_type,{type_name(value)}}}"

    return check


def _queue_type(value: object) -> str | None:
    if not isinstance(value, str):
        return f"{{unacceptable_type,{type_name(value)}}}"
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


@dataclass(frozen=True, slots=True)
class QueueArguments:
    message_ttl: int | None = None  # milliseconds
    expires: int | None = None  # milliseconds
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: Overflow = Overflow.DROP_HEAD
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_priority: int | None = None
    single_active_consumer: bool = False
    # Quorum queues: returns a message survives (read through QuorumQueue.delivery_limit),
    # and whether dead letters stay until their targets took them.
    delivery_limit: int | None = None
    dead_letter_strategy: str = "at-most-once"

    @classmethod
    def parse(cls, queue: str, vhost: str, arguments: Mapping[str, Any]) -> QueueArguments:
        for key, check in _CHECKS.items():
            if key in arguments and (problem := check(arguments[key])) is not None:
                raise PreconditionFailed(
                    f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {problem}"
                )
        for key in _STRING_ARGUMENTS:
            if key in arguments and not isinstance(arguments[key], str):
                raise PreconditionFailed(
                    f"invalid type '{type_name(arguments[key])}' for arg '{key}' in queue "
                    f"'{queue}' in vhost '{vhost}'"
                )
        if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
            raise PreconditionFailed(
                f"invalid arg 'x-dead-letter-routing-key' for queue '{queue}' in vhost "
                f"'{vhost}': routing_key_but_no_dlx_defined"
            )
        return cls(
            message_ttl=arguments.get("x-message-ttl"),
            expires=arguments.get("x-expires"),
            max_length=arguments.get("x-max-length"),
            max_length_bytes=arguments.get("x-max-length-bytes"),
            overflow=Overflow(arguments.get("x-overflow", Overflow.DROP_HEAD)),
            dead_letter_exchange=arguments.get("x-dead-letter-exchange"),
            dead_letter_routing_key=arguments.get("x-dead-letter-routing-key"),
            max_priority=arguments.get("x-max-priority"),
            single_active_consumer=bool(arguments.get("x-single-active-consumer", False)),
            # Not validated by RabbitMQ 3.10; only an integer limits anything there.
            delivery_limit=limit
            if isinstance(limit := arguments.get("x-delivery-limit"), int)
            and not isinstance(limit, bool)
            else None,
            dead_letter_strategy=arguments.get("x-dead-letter-strategy", "at-most-once"),
        )


def parse_expiration(text: str | None) -> int | None:
    """A message's ``expiration`` property as milliseconds, parsed as RabbitMQ does.

    RabbitMQ reads it with Erlang's ``string:to_integer`` and refuses anything
    but a non-negative integer, naming the problem the way Erlang does.
    """
    if text is None:
        return None
    digits = text.lstrip("+-")
    sign = text[: len(text) - len(digits)]
    end = 0
    while end < len(digits) and digits[end].isascii() and digits[end].isdigit():
        end += 1
    if end == 0 or len(sign) > 1:
        problem = "no_integer"
    elif end < len(digits):
        problem = f'{{leftover_string,"{digits[end:]}"}}'
    elif sign == "-" and int(digits) != 0:
        problem = f"{{value_negative,-{int(digits)}}}"
    else:
        return int(digits)
    raise PreconditionFailed(f"invalid expiration '{text}': {problem}")
