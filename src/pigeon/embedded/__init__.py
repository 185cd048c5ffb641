"""The in-process API: publish, get, consume, declare and inspect without a client library.

:class:`EmbeddedAPI` is a mixin of :class:`pigeon.broker.Broker`; it calls the
protocol-neutral core directly (no AMQP client, no socket). Core state belongs
to the broker's event loop, so every method runs its work there: directly when
called on that loop, or handed over to it when called from another thread or
another event loop (a ``Broker.in_thread`` broker used from an async test).

- ``await broker.publish(...)`` and the other coroutines work from any loop.
- ``broker.sync.publish(...)`` is the same API for code that is not async.
- ``broker.queue(name)`` and ``broker.queues()`` are plain methods returning
  snapshots, for ``wait_for`` predicates and assertions.
- ``broker.vhost(name)`` is the same API on another virtual host.
"""

from pigeon.embedded.api import EmbeddedAPI, VhostView
from pigeon.embedded.delivery import ReceivedMessage, Settlement, Subscription
from pigeon.embedded.operations import Operations
from pigeon.embedded.properties import MessageProperties
from pigeon.embedded.snapshot import QueuedMessage, QueueInfo
from pigeon.embedded.sync import SyncAPI

__all__ = [
    "EmbeddedAPI",
    "MessageProperties",
    "Operations",
    "QueueInfo",
    "QueuedMessage",
    "ReceivedMessage",
    "Settlement",
    "Subscription",
    "SyncAPI",
    "VhostView",
]
