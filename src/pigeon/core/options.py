"""Typed queue, exchange and policy options: what an object does, in no client's words.

The core reads these and nothing else. A client speaks a vocabulary (RabbitMQ's
``x-*`` argument tables and policy definitions, for every entry point today);
the operations layer converts it, validates it with that vocabulary's error texts,
and is handed to the core as a :class:`Vocabulary` by the composition root. The
core keeps a declared argument table only as data: to report it back, to store it,
and to ask the vocabulary whether a redeclare is equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pigeon.errors import PreconditionFailed

if TYPE_CHECKING:
    from pigeon.core.exchange import Exchange
    from pigeon.core.policy import Policy
    from pigeon.core.queue import Queue

CLASSIC = "classic"
QUORUM = "quorum"


class Overflow(StrEnum):
    """What a queue at its length limit does with one more message."""

    DROP_HEAD = "drop-head"
    REJECT_PUBLISH = "reject-publish"
    REJECT_PUBLISH_DLX = "reject-publish-dlx"


@dataclass(frozen=True, slots=True)
class QueueOptions:
    type: str = CLASSIC  # CLASSIC or QUORUM
    message_ttl: int | None = None  # milliseconds
    expires: int | None = None  # milliseconds unused before the queue goes
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
    # The fields the declaration set itself: a policy yields to them (core.policy).
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """What a policy sets (None: not set); the fields are :class:`QueueOptions`' and the
    exchanges' ``alternate_exchange``."""

    message_ttl: int | None = None
    expires: int | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: Overflow | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    delivery_limit: int | None = None
    dead_letter_strategy: str | None = None
    alternate_exchange: str | None = None
    # False when the policy sets something a quorum queue cannot take: it skips them.
    fits_quorum: bool = True


@dataclass(frozen=True, slots=True)
class ExchangeOptions:
    alternate_exchange: str | None = None


class Vocabulary(Protocol):
    """How clients say what they declare: converts to options, with that vocabulary's
    texts in :class:`~pigeon.errors.PreconditionFailed` (``pigeon.operations.arguments``)."""

    def queue_options(self, queue: str, vhost: str, arguments: Mapping[str, Any]) -> QueueOptions:
        """A queue's declared options (raises for a value it refuses)."""

    def check_new_queue(
        self,
        queue: str,
        vhost: str,
        arguments: Mapping[str, Any],
        *,
        generated: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> None:
        """Refuse a new queue its type cannot be."""

    def queue_inequivalence(
        self, queue: Queue, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
    ) -> str | None:
        """Why a redeclare differs from the queue, or None."""

    def exchange_options(
        self, exchange: str, vhost: str, arguments: Mapping[str, Any]
    ) -> ExchangeOptions:
        """A new exchange's options (raises for a value it refuses)."""

    def exchange_inequivalence(
        self,
        exchange: Exchange,
        vhost: str,
        type: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Mapping[str, Any],
    ) -> str | None:
        """Why a redeclare differs from the exchange, or None."""

    def binding_problem(self, exchange_type: str, arguments: Mapping[str, Any]) -> str | None:
        """Why a binding's arguments are refused by an exchange of this type, or None."""

    def policy(
        self, vhost: str, name: str, data: Mapping[str, Any], *, operator: bool = False
    ) -> Policy:
        """A policy from its stored (or API) form (raises for one it refuses)."""

    def limits(self, values: Mapping[str, Any]) -> dict[str, int]:
        """A vhost's limits from their stored (or API) form (raises for ones it refuses)."""


class _Neutral:
    """No vocabulary: declarations come with typed options and no argument table (a
    core on its own, in tests). It refuses any table rather than ignore it."""

    @staticmethod
    def _refuse(table: Mapping[str, Any]) -> None:
        if table:
            raise PreconditionFailed("argument tables are not understood here")

    def queue_options(self, queue: str, vhost: str, arguments: Mapping[str, Any]) -> QueueOptions:
        self._refuse(arguments)
        return QueueOptions()

    def check_new_queue(
        self, queue: str, vhost: str, arguments: Mapping[str, Any], **_: bool
    ) -> None:
        self._refuse(arguments)

    def queue_inequivalence(
        self, queue: Queue, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
    ) -> str | None:
        if (durable, auto_delete) != (queue.durable, queue.auto_delete):
            return f"queue '{queue.name}' was declared with other flags"
        return None

    def exchange_options(
        self, exchange: str, vhost: str, arguments: Mapping[str, Any]
    ) -> ExchangeOptions:
        self._refuse(arguments)
        return ExchangeOptions()

    def exchange_inequivalence(
        self,
        exchange: Exchange,
        vhost: str,
        type: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Mapping[str, Any],
    ) -> str | None:
        flags = (exchange.type, exchange.durable, exchange.auto_delete, exchange.internal)
        if flags != (type, durable, auto_delete, internal):
            return f"exchange '{exchange.name}' was declared with other flags"
        return None

    def binding_problem(self, exchange_type: str, arguments: Mapping[str, Any]) -> str | None:
        return None  # (the exchange type's own check applies)

    def policy(
        self, vhost: str, name: str, data: Mapping[str, Any], *, operator: bool = False
    ) -> Policy:
        raise PreconditionFailed("policies are not understood here")

    def limits(self, values: Mapping[str, Any]) -> dict[str, int]:
        self._refuse(values)
        return {}


NEUTRAL: Vocabulary = _Neutral()
