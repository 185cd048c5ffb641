"""A queue: ready messages and the consumers that compete for them.

The queue picks the consumer for each message (highest consumer priority
first, round-robin among equals, or only the single active consumer), expires
messages at its head (``x-message-ttl`` and per-message ``expiration``),
enforces ``x-max-length``/``x-max-length-bytes`` with its overflow mode, and
hands dead letters to its vhost through :class:`QueueHooks`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pigeon.core.consumer import Consumer
from pigeon.core.entry import Entry, QueueStats
from pigeon.core.message import Message
from pigeon.core.options import Overflow, QueueOptions
from pigeon.core.paged_levels import PagedLevels
from pigeon.core.pageout import PageOut, paged_ready
from pigeon.core.paging import PagedReady
from pigeon.core.ports import DeliveryObserver, Scheduler, Store, TimerHandle
from pigeon.core.queue_api import QueueHandle
from pigeon.core.queue_limits import QueueHooks, QueueLimits
from pigeon.core.queue_store import QueueStorage
from pigeon.core.ready import ReadyMessages
from pigeon.errors import AccessRefused

if TYPE_CHECKING:
    from pigeon.core.policy import Policy

__all__ = ["Entry", "Queue", "QueueHooks", "QueueStats"]

# At most this many messages per hand-over to one consumer: bounds the list and the
# encoded frames of one call for a consumer with a very large (or no) prefetch.
DISPATCH_BATCH = 512


class Queue(QueueLimits, QueueStorage):
    """A classic queue; :class:`~pigeon.core.quorum.QuorumQueue` adds what quorum ones do."""

    type = "classic"
    # Whether returns are counted (x-delivery-count, a delivery limit): quorum queues.
    counts_deliveries = False
    # Where a replicated queue lives (cluster mode): its leader and all its members,
    # server names; None: in this node alone.
    placement: tuple[str, list[str]] | None = None

    def __init__(
        self,
        name: str,
        vhost: str,
        *,
        scheduler: Scheduler,
        hooks: QueueHooks,
        observers: list[DeliveryObserver] | None = None,
        store: Store | None = None,
        watchers: list[Callable[[], object]] | None = None,
        durable: bool = False,
        exclusive_owner: object = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        options: QueueOptions | None = None,
    ) -> None:
        """``arguments``: as declared, kept to report back and to compare on a redeclare;
        ``options``: what the queue does (what they say, with any policy laid over)."""
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        # What the queue does: its options with any policy laid over them (core.policy).
        self.args = QueueOptions(type=self.type) if options is None else options
        # The options as declared, under any policy (the vhost sets them with the policies).
        self.declared = self.args
        self.policy: Policy | None = None
        self.operator_policy: Policy | None = None
        self.ready: ReadyMessages | PagedReady | PagedLevels = ReadyMessages(self.args.max_priority)
        self.unacked = 0
        self.consumers: list[Consumer] = []
        self.stats = QueueStats()
        self.deleted = False
        self._scheduler = scheduler
        self._hooks = hooks
        self._observers: list[DeliveryObserver] = [] if observers is None else observers
        # Persistent messages of a durable queue are written here; None: memory only.
        self._store = store if durable and exclusive_owner is None else None
        # A long backlog waits on disk, not in memory, on a broker with a data folder.
        self._page_out: PageOut | None = None
        if store is not None and store.pager is not None:
            load = self._load_stored if self._store is not None else None
            fetch = self._fetch_stored if self._store is not None else None
            self.ready = paged_ready(self, store.pager, load, self._paged_entry, fetch)
            self._page_out = PageOut(self, store.pager, self._store)
        self._recovered_upto = 0  # messages at or below this seq came from the store
        # Each queue numbers its own messages (a replicated log numbers per stream too);
        # recovery continues above the highest number stored (QueueStorage.restore*).
        self._sequence = itertools.count(1)
        # Told of every change (embedded wait_for); an empty list in a plain server.
        self._watchers: list[Callable[[], object]] = [] if watchers is None else watchers
        self._had_consumer = False
        self._dispatching = False
        self.recovering = False  # stored messages being read back (begin_recovery)
        # Noted in a publisher's ``due`` list; see enqueue.
        self._due = False
        self._limited = self.takes_runs = False
        self._options_changed()
        # Single active consumer: the next one waits until the previous one's
        # deliveries are settled, as in RabbitMQ.
        self._handing_over = False
        self._expiry_timer: TimerHandle | None = None
        self._expiry_due: float | None = None
        self._unused_timer: TimerHandle | None = None
        self.touch()

    def _options_changed(self) -> None:
        # Max-length or max-length-bytes: every enqueue checks the limits.
        self._limited = self.args.max_length is not None or self.args.max_length_bytes is not None
        # Whether enqueue_run may take several messages at once.
        self.takes_runs = (
            not self._limited
            and self.args.message_ttl is None
            and not self.args.max_priority
            and type(self.ready) in (ReadyMessages, PagedReady)
        )

    def apply_options(self, options: QueueOptions) -> None:
        """New effective options (a policy was set, changed or cleared), taken as RabbitMQ
        does: a length limit trims the backlog at once, a TTL counts for messages enqueued
        from now on, an expiry restarts its countdown, dead letters go to the new place."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        self.args = options
        self._options_changed()
        self._enforce_max_length()
        self._cancel_unused_timer()
        self.touch()

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} in {self.vhost!r} ready={len(self.ready)}>"

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def dead_letters_pending(self) -> int:
        """At-least-once dead letters no target took yet (RabbitMQ's messages_dlx)."""
        return 0

    # -- publishing ---------------------------------------------------------

    def enqueue(
        self,
        message: Message,
        now: float,
        due: list[QueueHandle] | None = None,
    ) -> bool:
        """Add a routed message; False if the overflow mode refused it.

        It expires at the earlier of its own expiry (``message.expires_at``) and the
        queue's message TTL counted from ``now``.
        ``due``: where to note that consumers are waiting, so that the caller hands
        over every message of a batch of publishes at once (see
        :meth:`VirtualHost.dispatch_due`); None hands it over now.
        """
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        args = self.args
        if self._limited and self.would_reject(message):
            self.stats.dropped += 1
            if args.overflow is Overflow.REJECT_PUBLISH_DLX:
                self._dead_letter(message, "maxlen")
            return False
        expires_at = message.expires_at
        ttl = args.message_ttl
        if ttl is not None and (expires_at is None or now + ttl / 1000 < expires_at):
            expires_at = now + ttl / 1000
        priority = message.properties.priority or 0 if args.max_priority else 0
        entry = Entry(message, next(self._sequence), priority, expires_at, now)
        if self._store is not None and message.persistent:
            self._store.add_message(self.vhost, self.name, entry.seq, message)
            entry.persisted = True
        self.stats.published += 1
        ready = self.ready
        ready.append(entry)
        if self._page_out is not None and not self._page_out.busy and ready.needs_paging():
            self._page_out.request()
        if self._limited:
            self._enforce_max_length()
        if self.consumers:
            # A message that may expire or be dropped for length is handed over at once,
            # as it would be in RabbitMQ, before either can happen.
            if due is None or expires_at is not None or self._limited:
                self.dispatch(now)
            elif not self._due:
                self._due = True
                due.append(self)
        if expires_at is not None:
            if expires_at <= now and entry.seq == getattr(self.ready.peek(), "seq", None):
                # A zero TTL means "deliver now or never" (RabbitMQ's semantics).
                self._expire_head(now + 1e-9)
            else:
                self._schedule_expiry()
        return True

    def enqueue_run(self, messages: list[Message], now: float, due: list[QueueHandle]) -> None:
        """:meth:`enqueue` for several messages without an expiration, on a queue that
        ``takes_runs`` (no length limit, TTL or priorities, nothing paged): one call."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        store = self._store
        sequence = self._sequence
        entries = []
        for message in messages:
            entry = Entry(message, next(sequence), 0, None, now)
            if store is not None and message.persistent:
                store.add_message(self.vhost, self.name, entry.seq, message)
                entry.persisted = True
            entries.append(entry)
        self.stats.published += len(entries)
        ready = self.ready
        assert isinstance(ready, ReadyMessages | PagedReady)  # takes_runs
        ready.extend(entries)
        if self._page_out is not None and not self._page_out.busy and ready.needs_paging():
            self._page_out.request()
        if self.consumers and not self._due:
            self._due = True
            due.append(self)

    def dispatch_due(self) -> None:
        """The batch that noted this queue in ``due`` is over: hand its messages over."""
        self._due = False
        self.dispatch()

    def _changed(self) -> None:
        for watcher in self._watchers:
            watcher()

    # -- consumers ----------------------------------------------------------

    def check_exclusive_use(self, exclusive: bool) -> None:
        """Refuse a consumer beside an exclusive one, or an exclusive one beside others.

        A protocol asks before it confirms the consume, so the client never sees
        consume-ok for a consumer that is refused.
        """
        if any(c.exclusive for c in self.consumers) or (exclusive and self.consumers):
            raise AccessRefused(f"queue '{self.name}' in vhost '{self.vhost}' in exclusive use")

    def add_consumer(self, consumer: Consumer) -> None:
        self.check_exclusive_use(consumer.exclusive)
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        consumer.queue = self
        self.consumers.append(consumer)
        if not self.args.single_active_consumer:
            # Highest priority first; a stable sort keeps arrival order among equals.
            self.consumers.sort(key=_negative_priority)
        self._had_consumer = True
        self._cancel_unused_timer()
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        if consumer in self.consumers:
            if self.args.single_active_consumer and consumer is self.consumers[0]:
                self._handing_over = self.unacked > 0
            self.consumers.remove(consumer)
        if self.consumers or self.deleted:
            if self.consumers and self.args.single_active_consumer:
                self.dispatch()
            return
        if self.auto_delete and self._had_consumer:
            self._hooks.queue_unused(self)
        else:
            self.touch()

    @property
    def active_consumer(self) -> Consumer | None:
        """The consumer that receives, for a single-active-consumer queue."""
        return self.consumers[0] if self.consumers and self.args.single_active_consumer else None

    def _next_consumer(self) -> Consumer | None:
        consumers = self.consumers
        if self.args.single_active_consumer:
            if self._handing_over:
                if self.unacked:
                    return None
                self._handing_over = False
            first = consumers[0]
            return first if first.can_deliver() else None
        # Sorted by priority: lower priorities only get messages when every
        # higher one is full.
        for index, consumer in enumerate(consumers):
            if consumer.can_deliver():
                # Rotate among equals: move it behind its priority peers.
                end = index + 1
                while end < len(consumers) and consumers[end].priority == consumer.priority:
                    end += 1
                if end - 1 != index:
                    consumers.insert(end - 1, consumers.pop(index))
                return consumer
        return None

    def dispatch(self, now: float | None = None) -> None:
        """Hand ready messages to consumers that have room, until either runs out."""
        if self._dispatching or not self.consumers or not self.ready:
            return
        self._dispatching = True
        try:
            if now is None:
                now = self._scheduler.time()
            self._dispatch(now)
        finally:
            self._dispatching = False

    def _dispatch(self, now: float) -> None:
        """Round-robin among the consumers with room; a queue's only consumer gets as many
        messages as it has room for in one call (the common case: one worker per queue
        pays the room check and the protocol's encode set-up once per batch)."""
        ready = self.ready
        consumers = self.consumers
        while ready:
            consumer = self._next_consumer()
            if consumer is None:
                break
            limit = min(consumer.room(), DISPATCH_BATCH) if len(consumers) == 1 else 1
            if limit <= 0:
                break
            batch = self._take_ready(limit, now)
            if batch:  # (empty when every message taken had expired: look again)
                self._hand_over(consumer, batch)

    def _hand_over(self, consumer: Consumer, batch: list[Entry]) -> None:
        stats = self.stats
        stats.delivered += len(batch)
        if consumer.no_ack:
            stats.acked += len(batch)
            stats.consumed_auto_ack += len(batch)
            for entry in batch:
                if entry.persisted:
                    self._forget(entry)
        else:
            self.unacked += len(batch)
            stats.consumed_manual_ack += len(batch)
        consumer.deliver_many(self, batch)
        if self._observers:
            for entry in batch:
                self._observe(entry, consumer.no_ack)

    def _take_ready(self, limit: int, now: float) -> list[Entry]:
        """Up to ``limit`` ready messages, oldest first, expiring the stale ones."""
        ready = self.ready
        popleft = ready.popleft
        batch: list[Entry] = []
        redelivered = 0
        wanted = min(limit, len(ready))
        while wanted:
            entry = popleft()
            wanted -= 1
            expires_at = entry.expires_at
            if expires_at is not None and now > expires_at:
                self._expired(entry)  # may dead-letter: ready can change under us
                wanted = min(wanted, len(ready))
                continue
            if entry.redelivered:
                redelivered += 1
            batch.append(entry)
        self.stats.redelivered += redelivered
        return batch

    # -- basic.get, settlement ----------------------------------------------

    def get(self, no_ack: bool) -> Entry | None:
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        now = self._scheduler.time()
        self.touch()
        while self.ready and not self.recovering:
            entry = self.ready.popleft()
            if entry.expires_at is not None and now > entry.expires_at:
                self._expired(entry)
                continue
            stats = self.stats
            stats.delivered += 1
            if no_ack:
                stats.acked += 1
                stats.got_auto_ack += 1
                self._forget(entry)
            else:
                self.unacked += 1
                stats.got_manual_ack += 1
            if self._observers:
                self._observe(entry, no_ack)
            return entry
        self.stats.get_empty += 1
        return None

    def get_later(self, no_ack: bool, done: Callable[[Entry | None], object]) -> bool:
        """For a queue whose messages are elsewhere (cluster mode): True if the answer
        to a ``get`` comes later, through ``done`` on the loop (never within this call);
        False (here, always): call :meth:`get`."""
        return False

    def _observe(self, entry: Entry, acked: bool) -> None:
        for observer in self._observers:
            observer.delivered(self, entry)
            if acked:
                observer.acked(self, entry)

    def ack(self, entry: Entry) -> None:
        self.ack_many((entry,))

    def ack_many(self, entries: Sequence[Entry]) -> None:
        """Settle delivered messages for good (basic.ack, possibly ``multiple``)."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        self.unacked -= len(entries)
        self.stats.acked += len(entries)
        if self._store is not None:  # only then can an entry be persisted
            for entry in entries:
                if entry.persisted:
                    self._forget(entry)
        for observer in self._observers:
            for entry in entries:
                observer.acked(self, entry)
        if self._handing_over and not self.unacked:
            self.dispatch()

    def requeue(self, entries: Iterable[Entry]) -> None:
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        entries = list(entries)
        for entry in entries:
            entry.redelivered = True
        self.unacked -= len(entries)
        if self.deleted:
            return
        entries = self._returned(entries)
        self.ready.requeue(entries)
        self._enforce_max_length()
        self._schedule_expiry()
        self.dispatch()

    def _returned(self, entries: list[Entry]) -> list[Entry]:
        """Delivered messages on their way back to ready: the ones that go back."""
        return entries

    def reject(self, entry: Entry) -> None:
        """Settle without requeue: dead-letter it if the queue says where."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        self.unacked -= 1
        self._discard(entry, "rejected")
        if self._handing_over and not self.unacked:
            self.dispatch()

    def purge(self, *, record: bool = True) -> int:
        """Drop the ready messages; how many. Not ``record``: a purge replayed from a
        log, which the store is not told of again."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        if self._page_out is not None:
            self._page_out.drop()
        self._end_recovery()
        removed, paged = self.ready.clear()
        store = self._store if record else None
        if store is not None and (removed or paged):
            if self.unacked:
                # Delivered-but-unacked messages survive a purge: remove only the ready.
                for entry in removed:
                    self._forget(entry)
                for seq in paged:
                    if seq > 0:  # (negative: a transient message in the pager)
                        store.remove_message(self.vhost, self.name, seq)
            else:
                store.purge(self.vhost, self.name)
        return len(removed) + len(paged)

    def delete(self) -> int:
        """Mark deleted and cancel the consumers; returns the ready count dropped."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        self.deleted = True
        self._end_recovery()
        if self._page_out is not None:
            self._page_out.drop()
        removed, paged = self.ready.clear()
        count = len(removed) + len(paged)
        self.stop_timers()
        consumers, self.consumers = self.consumers, []
        for consumer in consumers:
            consumer.cancelled_by_broker()
        return count


def _negative_priority(consumer: Consumer) -> int:
    return -consumer.priority
