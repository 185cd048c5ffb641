"""Queue types (classic, quorum): the class that implements each.

Which arguments each type accepts, and RabbitMQ's refusals of the others, are
the vocabulary's (``pigeon.operations.arguments``); the core only picks the
class for the type the options name.
"""

from __future__ import annotations

from pigeon.core.options import CLASSIC, QUORUM, QueueOptions
from pigeon.core.queue import Queue
from pigeon.core.quorum import QuorumQueue

__all__ = ["CLASSIC", "QUORUM", "queue_class"]


def queue_class(options: QueueOptions) -> type[Queue]:
    """The class of a queue declared (or restored) with these options."""
    return QuorumQueue if options.type == QUORUM else Queue
