"""Queue types (classic, quorum): which arguments and properties each accepts.

RabbitMQ 3.10 refuses, with 406, an argument that only another queue type
takes (``x-max-priority`` on a quorum queue, ``x-delivery-limit`` on a classic
one), naming the type by its Erlang module; and a quorum queue that is not
durable, is exclusive or auto-delete, or has a server-generated name
(``rabbit_queue_type_util``, ``rabbit_channel``). The texts are theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pigeon.core.queue import Queue
from pigeon.core.quorum import QuorumQueue
from pigeon.errors import PreconditionFailed

CLASSIC = "classic"
QUORUM = "quorum"

# How RabbitMQ names each type in its error texts.
_MODULES = {CLASSIC: "rabbit_classic_queue", QUORUM: "rabbit_quorum_queue"}

# Each type's queue arguments (the ``queue_arguments`` of its ``capabilities/0``); they
# are also the ones compared when a queue is declared again.
CLASSIC_ARGUMENTS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
)
QUORUM_ARGUMENTS = (
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
    "x-queue-leader-locator",
)
_STREAM_ARGUMENTS = (
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
)
_ACCEPTED = {CLASSIC: frozenset(CLASSIC_ARGUMENTS), QUORUM: frozenset(QUORUM_ARGUMENTS)}
# An argument no type knows (``x-foo``) is kept and ignored, as in RabbitMQ.
_KNOWN = frozenset((*CLASSIC_ARGUMENTS, *QUORUM_ARGUMENTS, *_STREAM_ARGUMENTS))


def queue_type(arguments: Mapping[str, Any]) -> str:
    kind = arguments.get("x-queue-type")
    return kind if kind in _ACCEPTED else CLASSIC


def queue_class(arguments: Mapping[str, Any]) -> type[Queue]:
    """The class of a queue declared (or restored) with these arguments."""
    return QuorumQueue if queue_type(arguments) == QUORUM else Queue


def check_declare(
    name: str,
    vhost: str,
    arguments: Mapping[str, Any],
    *,
    generated: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> None:
    """Refuse, as RabbitMQ does, a new queue its type cannot be."""
    if arguments.get("x-queue-type", CLASSIC) not in _ACCEPTED:
        return  # QueueArguments.parse refuses it, in its own words
    kind = queue_type(arguments)
    where = f"queue '{name}' in vhost '{vhost}'"
    accepted = _ACCEPTED[kind]
    for key in arguments:
        if key in _KNOWN and key not in accepted:
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


def equivalence_keys(kind: str) -> tuple[str, ...]:
    return QUORUM_ARGUMENTS if kind == QUORUM else CLASSIC_ARGUMENTS
