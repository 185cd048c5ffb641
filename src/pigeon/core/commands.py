"""Durable state changes as data: what a store records and what the core can replay.

Every change the core asks a store to keep is one of the commands below. A store
takes them through :meth:`pigeon.core.ports.Store.apply` (or the named methods that
build them); :func:`pigeon.core.replay.apply` makes the same change to a node's
state without writing it again. Recovery is that replay over what the store kept,
and a change that originates elsewhere (another node of a cluster reading the same
replicated log) is applied the same way.

The commands are small frozen dataclasses of plain values (and the neutral
message), so that a replicated store can ship them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pigeon.core.message import Message

# -- definitions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeRecord:
    vhost: str
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueRecord:
    vhost: str
    name: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BindingRecord:
    vhost: str
    source: str
    destination: str
    destination_kind: str  # "queue" or "exchange"
    routing_key: str
    arguments: dict[str, Any]


# -- commands ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeclareVhost:
    name: str


@dataclass(frozen=True, slots=True)
class DeleteVhost:
    """The vhost goes with everything in it (exchanges, queues, bindings, messages,
    retained messages)."""

    name: str


@dataclass(frozen=True, slots=True)
class DeclareExchange:
    record: ExchangeRecord


@dataclass(frozen=True, slots=True)
class DeleteExchange:
    """The exchange goes with the bindings from it and to it."""

    vhost: str
    name: str


@dataclass(frozen=True, slots=True)
class DeclareQueue:
    record: QueueRecord


@dataclass(frozen=True, slots=True)
class DeleteQueue:
    """The queue goes with its bindings and its messages."""

    vhost: str
    name: str


@dataclass(frozen=True, slots=True)
class Bind:
    record: BindingRecord


@dataclass(frozen=True, slots=True)
class Unbind:
    record: BindingRecord


@dataclass(frozen=True, slots=True)
class AddMessage:
    """A persistent message of a durable queue, numbered by its queue (``seq``).

    Adding a number the queue already holds replaces that copy (a quorum queue
    keeps its delivery count in the stored copy so).
    """

    vhost: str
    queue: str
    seq: int
    message: Message


@dataclass(frozen=True, slots=True)
class RemoveMessages:
    """Settled (acknowledged, dropped, expired, dead-lettered) messages of a queue."""

    vhost: str
    queue: str
    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Purge:
    vhost: str
    queue: str


@dataclass(frozen=True, slots=True)
class SaveDocument:
    """A free-form record other layers keep (users, permissions, policies, parameters)."""

    kind: str
    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class DeleteDocument:
    kind: str
    key: str


@dataclass(frozen=True, slots=True)
class RetainMessage:
    """The retained message of a topic of a vhost (MQTT), replacing the one it had.

    ``expires``: when it expires, in seconds since the epoch (wall clock, so that the
    time left survives a restart; the core converts it to its own clock), or None.
    """

    vhost: str
    topic: str
    message: Message
    expires: float | None = None


@dataclass(frozen=True, slots=True)
class ForgetRetained:
    """The topic has no retained message any more (cleared, expired, or over a limit)."""

    vhost: str
    topic: str


Command = (
    DeclareVhost
    | DeleteVhost
    | DeclareExchange
    | DeleteExchange
    | DeclareQueue
    | DeleteQueue
    | Bind
    | Unbind
    | AddMessage
    | RemoveMessages
    | Purge
    | SaveDocument
    | DeleteDocument
    | RetainMessage
    | ForgetRetained
)
