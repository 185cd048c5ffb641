"""Queue types (classic, quorum): the class that implements each.

Which arguments each type accepts, and RabbitMQ's refusals of the others, are
the vocabulary's (``pigeon.operations.arguments``); the core only picks the
class for the type the options name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pigeon.core.options import CLASSIC, QUORUM, QueueOptions
from pigeon.core.queue import Queue
from pigeon.core.quorum import QuorumQueue

__all__ = ["CLASSIC", "QUORUM", "QueueFactory", "queue_class"]


class QueueFactory(Protocol):
    """Another home for some queues (cluster mode: durable queues in JetStream streams).

    Asked for every new queue: returns what to build it with (called with the
    arguments :class:`Queue` takes), or None for this process's own classes. May
    raise a :class:`~pigeon.errors.PigeonError` to refuse what it cannot honour.
    """

    def __call__(
        self, options: QueueOptions, *, durable: bool, exclusive: bool, auto_delete: bool
    ) -> Callable[..., Queue] | None: ...


def queue_class(options: QueueOptions) -> type[Queue]:
    """The class of a queue declared (or restored) with these options."""
    return QuorumQueue if options.type == QUORUM else Queue
