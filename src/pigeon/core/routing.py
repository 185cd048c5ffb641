"""Routing of a virtual host: from an exchange to the queues a message reaches.

:class:`Routing` is the part of :class:`~pigeon.core.vhost.VirtualHost` that walks
exchanges (exchange-to-exchange bindings, alternate exchanges, CC/BCC), caches the
result per (exchange, routing key) until the bindings change, and enqueues, handing
over the messages of a batch of publishes at once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pigeon.core.binding import DestinationKind
from pigeon.core.exchange import Exchange
from pigeon.core.message import SIZE_BOUNDS, SMALL, Message, MessageSizes, without_header
from pigeon.core.ports import Scheduler
from pigeon.core.queue_api import QueueHandle

ROUTE_CACHE_LIMIT = 4096


@dataclass(slots=True)
class VhostStats:
    received: int = 0
    received_confirm: int = 0  # of them, published on a channel in confirm mode
    routed: int = 0
    unroutable_dropped: int = 0
    unroutable_returned: int = 0
    confirmed: int = 0

    def add(self, other: VhostStats) -> None:
        """Add another's counts to these (a deleted vhost's, into the node's)."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Routing:
    """Routing and enqueueing (a part of :class:`VirtualHost`)."""

    # Set by VirtualHost.__init__.
    exchanges: dict[str, Exchange]
    queues: Mapping[str, QueueHandle]
    scheduler: Scheduler
    _route_cache: dict[tuple[str, str], list[QueueHandle]]
    _due: list[QueueHandle]
    _due_scheduled: bool
    stats: VhostStats
    sizes: MessageSizes  # body sizes received, node-wide

    def route(
        self, exchange: Exchange, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[QueueHandle]:
        """The queues a message reaches, each once."""
        cc = headers.get("CC") if headers else None
        bcc = headers.get("BCC") if headers else None
        cacheable = cc is None and bcc is None
        if cacheable:
            key = (exchange.name, routing_key)
            cached = self._route_cache.get(key)
            if cached is not None:
                return cached
        keys = [routing_key]
        for extra in (cc, bcc):
            if isinstance(extra, list):
                keys.extend(k for k in extra if isinstance(k, str))
        queues, uses_headers = self._walk(exchange, keys, headers)
        if cacheable and not uses_headers:
            if len(self._route_cache) >= ROUTE_CACHE_LIMIT:
                self._route_cache.clear()
            self._route_cache[key] = queues
        return queues

    def _walk(
        self, start: Exchange, keys: list[str], headers: Mapping[str, Any] | None
    ) -> tuple[list[QueueHandle], bool]:
        found: dict[str, QueueHandle] = {}
        seen: set[str] = set()
        pending = [start]
        uses_headers = False
        while pending:
            exchange = pending.pop()
            if exchange.name in seen:
                continue
            seen.add(exchange.name)
            uses_headers = uses_headers or exchange.type == "headers"
            matched = False
            for key in keys:
                if exchange.name == "":
                    queue = self.queues.get(key)
                    if queue is not None:
                        found.setdefault(key, queue)
                        matched = True
                    continue
                for kind, name in exchange.route(key, headers):
                    matched = True
                    if kind is DestinationKind.QUEUE:
                        if (queue := self.queues.get(name)) is not None:
                            found.setdefault(name, queue)
                    elif (target := self.exchanges.get(name)) is not None:
                        pending.append(target)
            alternate = exchange.alternate_exchange
            if not matched and alternate is not None and alternate in self.exchanges:
                pending.append(self.exchanges[alternate])
        return list(found.values()), uses_headers

    def publish(self, message: Message, exchange: Exchange) -> tuple[int, bool]:
        """Route and enqueue. Returns (queues routed to, whether any refused it)."""
        properties = message.properties
        table = properties.header_table() if properties.headers else None
        queues = None if table else self._route_cache.get((exchange.name, message.routing_key))
        if queues is None:
            queues = self.route(exchange, message.routing_key, table)
        stats = self.stats
        stats.received += 1
        size = len(message.body)
        sizes = self.sizes
        sizes.counts[0 if size <= SMALL else bisect_left(SIZE_BOUNDS, size)] += 1
        sizes.total += size
        exchange.stats.publish_in += 1
        if queues:
            # As RabbitMQ's messages_routed: one per queue reached, not per message.
            stats.routed += len(queues)
            exchange.stats.publish_out += len(queues)
        if table and "BCC" in table:
            # BCC recipients must not see each other: strip it before anyone stores it.
            headers = without_header(properties.headers, "BCC")
            message = message.with_properties(properties.copy(headers=headers))
        now = self.scheduler.time()
        ttl = properties.ttl
        if ttl is not None and message.expires_at is None:
            # The absolute expiry, on the scheduler's clock: RabbitMQ counts a
            # per-message TTL from enqueue, which is this instant.
            message.expires_at = now + ttl / 1000
        refused = False
        due = self._due
        for queue in queues:
            if not queue.enqueue(message, now, due):
                refused = True
        self._backstop_due()
        return len(queues), refused

    def publish_run(self, messages: list[Message], exchange: Exchange) -> bool:
        """Route and enqueue messages that share an exchange and a routing key and carry
        neither headers nor an expiration: routed once, enqueued together.

        Returns False, having done nothing, when a queue they reach needs the general
        path (:meth:`publish`, one message at a time) or when nothing is reached.
        """
        key = messages[0].routing_key
        queues = self._route_cache.get((exchange.name, key))
        if queues is None:
            queues = self.route(exchange, key, None)
        if not queues or not all(queue.takes_runs for queue in queues):
            return False
        count = len(messages)
        stats = self.stats
        stats.received += count
        self.sizes.add_run(messages)
        stats.routed += count * len(queues)
        exchange.stats.publish_in += count
        exchange.stats.publish_out += count * len(queues)
        now = self.scheduler.time()
        due = self._due
        for queue in queues:
            queue.enqueue_run(messages, now, due)
        self._backstop_due()
        return True

    def dispatch_due(self) -> None:
        """Hand over what the publishes since the last call left waiting for consumers:
        every queue's messages in one batch instead of one delivery per publish."""
        due = self._due
        while due:
            queues = due.copy()
            due.clear()
            for queue in queues:
                queue.dispatch_due()

    def _backstop_due(self) -> None:
        # Whoever publishes should call dispatch_due when its batch is done; this is the
        # backstop for those that don't (the embedded API, dead letters).
        if self._due and not self._due_scheduled:
            self._due_scheduled = True
            self.scheduler.call_soon(self._dispatch_due_soon)

    def _dispatch_due_soon(self) -> None:
        self._due_scheduled = False
        self.dispatch_due()
