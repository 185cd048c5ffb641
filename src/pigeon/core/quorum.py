"""What a quorum queue adds to a queue: delivery counts and at-least-once dead letters.

Semantics are RabbitMQ 3.10's ``rabbit_fifo``: every return of a delivered
message (nack or reject with requeue, a channel or connection closing with it
unacknowledged, a cancelled consumer's in-flight messages) counts one
delivery; a message returned more often than its delivery limit is
dead-lettered with reason ``delivery_limit`` (dropped without a dead-letter
exchange). Deliveries carry the count in an ``x-delivery-count`` header.

On one node a quorum queue is kept by this node alone (replication factor 1);
cluster mode will replicate it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pigeon.core.message import Long, Message, set_header, without_header
from pigeon.core.options import Overflow, QueueOptions
from pigeon.core.ports import Scheduler, TimerHandle
from pigeon.core.queue import Entry, Queue

DELIVERY_COUNT = "x-delivery-count"
# The header a stored copy carries its count in: a name no publisher uses, so that a
# client's own x-delivery-count header is never mistaken for it.
STORED_COUNT = "x-pigeon-delivery-count"
# Seconds between attempts to route at-least-once dead letters nobody took.
RETRY_INTERVAL = 1.0


def with_delivery_count(message: Message, count: int, header: str = DELIVERY_COUNT) -> Message:
    """A copy whose headers carry ``count`` (delivered, or stored for a restart)."""
    properties = message.properties
    headers = set_header(properties.headers, header, Long(count))
    return message.with_properties(properties.copy(headers=headers))


def stored_delivery_count(message: Message) -> tuple[Message, int]:
    """A recovered message as published, and the count its stored copy carried."""
    properties = message.properties
    count = properties.header(STORED_COUNT)
    if count is None:
        return message, 0
    rest = without_header(properties.headers, STORED_COUNT)
    message = message.with_properties(properties.copy(headers=rest))
    return message, count if isinstance(count, int) else 0


class PendingDeadLetters:
    """At-least-once dead letters that no target queue took yet (rabbit_fifo_dlx's
    discards): they stay in their queue, and in the store if persistent, and are routed
    again every ``RETRY_INTERVAL`` seconds until every target accepts them."""

    __slots__ = ("_entries", "_route", "_scheduler", "_timer")

    def __init__(self, scheduler: Scheduler, route: Callable[[Entry, str], bool]) -> None:
        self._scheduler = scheduler
        # True once the message is routed and no target refused it.
        self._route = route
        self._entries: list[tuple[Entry, str]] = []
        self._timer: TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return sum(len(entry.message.body) for entry, _ in self._entries)

    def add(self, entry: Entry, reason: str) -> None:
        if not self._route(entry, reason):
            self._entries.append((entry, reason))
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and self._entries:
            self._timer = self._scheduler.call_later(RETRY_INTERVAL, self._retry)

    def _retry(self) -> None:
        self._timer = None
        pending, self._entries = self._entries, []
        for entry, reason in pending:
            self.add(entry, reason)

    def drain(self) -> list[tuple[Entry, str]]:
        """Stop retrying and hand over what waited (at-least-once was turned off)."""
        self.stop()
        entries, self._entries = self._entries, []
        return entries

    def stop(self) -> None:
        """No more retries (the broker stops, or the queue is deleted)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def clear(self) -> None:
        """The queue is deleted: forget what was pending (the store forgets it too)."""
        self.stop()
        self._entries = []


def _quorum_options(options: QueueOptions) -> QueueOptions:
    if options.overflow is Overflow.REJECT_PUBLISH_DLX:
        # RabbitMQ 3.10 accepts it on a quorum queue and applies drop-head.
        return replace(options, overflow=Overflow.DROP_HEAD)
    return options


class QuorumQueue(Queue):
    """A durable queue with RabbitMQ 3.10's quorum semantics (see the module's text)."""

    type = "quorum"
    counts_deliveries = True

    def __init__(self, name: str, vhost: str, **options: Any) -> None:
        self._pending: PendingDeadLetters | None = None
        effective = options.pop("options", None) or QueueOptions(type=self.type)
        super().__init__(name, vhost, options=_quorum_options(effective), **options)

    def apply_options(self, options: QueueOptions) -> None:
        """A policy changed the options (see Queue.apply_options)."""
        super().apply_options(_quorum_options(options))

    def _options_changed(self) -> None:
        super()._options_changed()
        # At-least-once needs a dead-letter exchange and reject-publish; without them
        # RabbitMQ falls back to at-most-once, and so does this.
        args = self.args
        wanted = (
            args.dead_letter_strategy == "at-least-once"
            and args.dead_letter_exchange is not None
            and args.overflow is Overflow.REJECT_PUBLISH
        )
        if wanted and self._pending is None:
            self._pending = PendingDeadLetters(self._scheduler, self._route_dead_letter)
        elif not wanted and self._pending is not None:
            # A policy turned it off: what waited goes at most once, as from now on.
            pending, self._pending = self._pending, None
            for entry, reason in pending.drain():
                super()._discard(entry, reason)

    @property
    def delivery_limit(self) -> int | None:
        """The delivery limit in force, read here and nowhere else: ``x-delivery-limit``
        or a ``delivery-limit`` policy, the lower of the two (core.policy)."""
        return self.args.delivery_limit

    @property
    def dead_letters_pending(self) -> int:
        return 0 if self._pending is None else len(self._pending)

    # -- length limits -----------------------------------------------------------------

    def would_reject(self, message: Message) -> bool:
        """Refuse once the queue is *over* its limits, so it takes one message past them
        (rabbit_fifo's is_over_limit); dead letters waiting for a target take room."""
        args = self.args
        if args.overflow is Overflow.DROP_HEAD:
            return False
        pending = self._pending
        count = len(self.ready) + (len(pending) if pending else 0)
        if args.max_length is not None and count > args.max_length:
            return True
        size = self.ready.bytes + (pending.bytes if pending else 0)
        return args.max_length_bytes is not None and size > args.max_length_bytes

    def _enforce_max_length(self) -> None:
        if self.args.overflow is Overflow.DROP_HEAD:  # reject-publish never drops
            super()._enforce_max_length()

    # -- returns -----------------------------------------------------------------------

    def _returned(self, entries: list[Entry]) -> list[Entry]:
        """Count a return of each (rabbit_fifo's return_one); the ones past the delivery
        limit are dead-lettered or dropped, the others go back."""
        limit = self.delivery_limit
        store = self._store
        kept = []
        for entry in entries:
            entry.delivery_count += 1
            if limit is not None and entry.delivery_count > limit:
                self.stats.dropped += 1
                self._discard(entry, "delivery_limit")
                continue
            kept.append(entry)
            if entry.persisted and store is not None:
                # The stored copy carries the count, so that a restart keeps it.
                store.rewrite_message(
                    self.vhost,
                    self.name,
                    entry.seq,
                    with_delivery_count(entry.message, entry.delivery_count, STORED_COUNT),
                )
        return kept

    def restore(self, seq: int, message: Message) -> Entry:
        message, count = stored_delivery_count(message)
        entry = super().restore(seq, message)
        entry.delivery_count = count
        return entry

    def _paged_entry(
        self, seq: int, message: Message, persisted: bool, expires_at: float | None, priority: int
    ) -> Entry:
        message, count = stored_delivery_count(message)
        entry = super()._paged_entry(seq, message, persisted, expires_at, priority)
        entry.delivery_count = count
        entry.redelivered = entry.redelivered or count > 0
        return entry

    # -- dead letters --------------------------------------------------------------------

    def _discard(self, entry: Entry, reason: str) -> None:
        if self._pending is None:
            super()._discard(entry, reason)
        else:
            self._pending.add(entry, reason)  # removed once a target took it

    def _route_dead_letter(self, entry: Entry, reason: str) -> bool:
        """At-least-once: remove the message only once its targets took it (the store
        writes their copies before it removes this one: writes keep their call order)."""
        if self.deleted:
            return True
        if not self._hooks.dead_letter(self, entry.message, reason):
            return False
        self.stats.count_dead_letter(reason)
        self._forget(entry)
        return True

    def delete(self) -> int:
        if self._pending is not None:
            self._pending.clear()  # the store forgets them with the queue
        return super().delete()

    def stop_timers(self) -> None:
        super().stop_timers()
        if self._pending is not None:
            self._pending.stop()
