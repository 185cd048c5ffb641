"""Where a queue's messages live besides memory: the store and the pager.

:class:`QueueStorage` is the part of :class:`~pigeon.core.queue.Queue` that writes
persistent messages of a durable queue to the store and forgets them once settled,
pages a long backlog out and reads it back, and restores a queue's messages after
a restart (as possibly delivered before, RabbitMQ's ``redelivered``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from pigeon.core.entry import Entry
from pigeon.core.message import Message
from pigeon.core.options import QueueOptions
from pigeon.core.paged_levels import PagedLevels
from pigeon.core.pageout import PageOut
from pigeon.core.paging import PagedReady
from pigeon.core.ports import Scheduler, Store
from pigeon.core.ready import ReadyMessages


class QueueStorage:
    """The store and pager side of a queue (a part of :class:`Queue`)."""

    # Set by Queue.__init__.
    name: str
    vhost: str
    args: QueueOptions
    ready: ReadyMessages | PagedReady | PagedLevels
    _scheduler: Scheduler
    _store: Store | None
    _page_out: PageOut | None
    _recovered_upto: int
    _dispatching: bool
    recovering: bool
    deleted: bool
    _sequence: itertools.count[int]

    def _schedule_expiry(self) -> None:  # pragma: no cover - QueueLimits has it
        raise NotImplementedError

    if TYPE_CHECKING:  # the other parts of Queue

        def _enforce_max_length(self) -> None: ...

        def dispatch(self, now: float | None = None) -> None: ...

    def reduce_memory(self) -> None:
        """Page out all but the head of the backlog now (the node is short of memory)."""
        if self._page_out is not None:
            self._page_out.request()

    def _load_stored(self, seqs: list[int]) -> list[tuple[int, Message]]:
        assert self._store is not None
        return self._store.read_messages(self.vhost, self.name, seqs)

    def _fetch_stored(
        self, seqs: list[int], done: Callable[[list[tuple[int, Message]]], object]
    ) -> None:
        assert self._store is not None
        self._store.fetch_messages(self.vhost, self.name, seqs, done)

    def _paged_entry(
        self, seq: int, message: Message, persisted: bool, expires_at: float | None, priority: int
    ) -> Entry:
        now = self._scheduler.time()
        recovered = persisted and seq <= self._recovered_upto
        own = message.properties.ttl
        if recovered and own is not None and (expires_at is None or now + own / 1000 < expires_at):
            # Its own TTL was not in the recovered index: it counts from the read-back.
            expires_at = now + own / 1000
        entry = Entry(message, seq, priority, expires_at, now)
        entry.persisted = persisted
        # Recovered from the store: possibly delivered before.
        entry.redelivered = recovered
        return entry

    def begin_recovery(self, last: int) -> None:
        """Stored messages numbered up to ``last`` are being read back (the store's
        ``fetch_index``); :meth:`finish_recovery` puts them in. Meanwhile new messages
        are numbered above them and wait behind them: nothing is delivered or paged
        out, so that the stored ones come first, in order."""
        self._recovered(last)
        self.recovering = True
        self._dispatching = True  # dispatch() returns at once until they are back

    def finish_recovery(self, seqs: list[int], stored_bytes: int) -> None:
        """The stored messages of :meth:`begin_recovery` were read: in front they go."""
        if not self.recovering:
            return  # purged or deleted meanwhile: they are gone with the rest
        self.recovering = False
        self._dispatching = False
        self.restore_index(seqs, stored_bytes)
        self._enforce_max_length()
        self._schedule_expiry()
        self.dispatch()

    def _end_recovery(self) -> None:
        """Purged or deleted while recovering: what was being read back is gone."""
        if self.recovering:
            self.recovering = False
            self._dispatching = False

    def restore_index(self, seqs: list[int], stored_bytes: int) -> None:
        """Recovered messages known by sequence number: read back when their turn comes
        (paging queues), or now, in batches (the others)."""
        if not seqs:
            return
        self._recovered(seqs[-1])
        ready = self.ready
        if isinstance(ready, PagedReady):
            ttl = self.args.message_ttl
            expires_at = None if ttl is None else self._scheduler.time() + ttl / 1000
            ready.restore(seqs, stored_bytes, expires_at)
            # The head's own TTL is known once it is read back: look at it now, or a
            # recovered message with a TTL and no consumer would never expire.
            self._schedule_expiry()
            return
        assert self._store is not None
        # Messages that arrived while these were read back are newer: behind them.
        newer, _ = ready.clear() if len(ready) else ([], [])
        for start in range(0, len(seqs), 5000):
            for seq, message in self._store.read_messages(
                self.vhost, self.name, seqs[start : start + 5000]
            ):
                self.restore(seq, message)
        for entry in newer:
            ready.append(entry)

    def restore(self, seq: int, message: Message) -> Entry:
        """Put back a message recovered from the store, as possibly delivered before."""
        priority = message.properties.priority or 0 if self.args.max_priority else 0
        now = self._scheduler.time()
        ttl = self.args.message_ttl
        own = message.properties.ttl
        if own is not None:
            # A stored message keeps its TTL, not its expiry: the countdown starts again
            # at recovery, as the queue's does (docs/messages.md).
            ttl = own if ttl is None else min(ttl, own)
        entry = Entry(message, seq, priority, None if ttl is None else now + ttl / 1000, now)
        entry.redelivered = True
        entry.persisted = True
        self.ready.append(entry)
        if entry.expires_at is not None:
            self._schedule_expiry()  # nothing else would expire a recovered head
        self._recovered(seq)
        return entry

    def settled_elsewhere(self, seqs: set[int]) -> bool:
        """Ready messages settled by another holder of the queue's log (a replicated
        store): drop them here too. False when none of them was ready here."""
        return self.ready.discard(seqs) > 0

    def _recovered(self, last: int) -> None:
        """Stored messages numbered up to ``last`` came back: number new ones above them."""
        if last > self._recovered_upto:
            self._recovered_upto = last
            self._sequence = itertools.count(max(next(self._sequence), last + 1))

    def _forget(self, entry: Entry) -> None:
        if entry.persisted and self._store is not None:
            self._store.remove_message(self.vhost, self.name, entry.seq)
            entry.persisted = False
