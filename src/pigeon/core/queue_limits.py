"""What a queue holds back or lets go: length limits, TTL, expiry and dead letters.

:class:`QueueLimits` is the part of :class:`~pigeon.core.queue.Queue` that enforces
``x-max-length``/``x-max-length-bytes`` with its overflow mode, expires messages at
the head (``x-message-ttl`` and per-message expiry; only the head expires, as in
RabbitMQ), deletes an unused queue after ``x-expires``, and hands dead letters to the
vhost through :class:`QueueHooks`. Dispatch and hand-over stay in ``core/queue.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from pigeon.core.consumer import Consumer
from pigeon.core.entry import Entry, QueueStats
from pigeon.core.message import Message
from pigeon.core.options import Overflow, QueueOptions
from pigeon.core.paged_levels import PagedLevels
from pigeon.core.paging import PagedReady
from pigeon.core.ports import Scheduler, TimerHandle
from pigeon.core.ready import ReadyMessages

if TYPE_CHECKING:
    from pigeon.core.queue import Queue

# At most this many expired messages dropped per loop turn.
EXPIRE_BATCH = 10_000


class QueueHooks(Protocol):
    """What a queue asks of the vhost that owns it."""

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> bool:
        """Route a dead letter; True when it reached a queue and none refused it."""
        ...

    def queue_unused(self, queue: Queue) -> None:
        """Auto-delete after the last consumer left, or ``x-expires`` ran out."""
        ...


class QueueLimits:
    """Length limits, expiry and dead-lettering of a queue (a part of :class:`Queue`)."""

    # Set by Queue.__init__.
    args: QueueOptions
    ready: ReadyMessages | PagedReady | PagedLevels
    stats: QueueStats
    consumers: list[Consumer]
    deleted: bool
    _scheduler: Scheduler
    _hooks: QueueHooks
    _watchers: list[Callable[[], object]]
    _expiry_timer: TimerHandle | None
    _expiry_due: float | None
    _unused_timer: TimerHandle | None

    if TYPE_CHECKING:  # (defined by the other parts of Queue)

        def _forget(self, entry: Entry) -> None: ...

        def _changed(self) -> None: ...

    def would_reject(self, message: Message) -> bool:
        """Whether ``reject-publish`` overflow refuses this message now."""
        args = self.args
        if args.overflow is Overflow.DROP_HEAD:
            return False
        if args.max_length is not None and len(self.ready) >= args.max_length:
            return True
        limit = args.max_length_bytes
        return limit is not None and self.ready.bytes + len(message.body) > limit

    def _enforce_max_length(self) -> None:
        args = self.args
        if args.max_length is None and args.max_length_bytes is None:
            return
        max_len = args.max_length if args.max_length is not None else float("inf")
        max_bytes = args.max_length_bytes if args.max_length_bytes is not None else float("inf")
        while self.ready and (len(self.ready) > max_len or self.ready.bytes > max_bytes):
            entry = self.ready.popleft()
            self.stats.dropped += 1
            self._discard(entry, "maxlen")

    def stop_timers(self) -> None:
        for timer in (self._expiry_timer, self._unused_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._unused_timer = None
        self._expiry_due = None

    def _expired(self, entry: Entry) -> None:
        self.stats.expired += 1
        self._discard(entry, "expired")

    def _discard(self, entry: Entry, reason: str) -> None:
        """A message leaves the queue for good: dead-letter it if the queue says where."""
        self._forget(entry)
        self._dead_letter(entry.message, reason)

    def _dead_letter(self, message: Message, reason: str) -> None:
        if self.args.dead_letter_exchange is not None:
            self.stats.count_dead_letter(reason)
            self._hooks.dead_letter(cast("Queue", self), message, reason)

    def _expire_head(self, now: float | None = None) -> None:
        """Drop expired messages at the head; only the head expires (as in RabbitMQ)."""
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        if now is None:
            now = self._scheduler.time()
        budget = EXPIRE_BATCH
        while (head := self.ready.peek()) is not None:
            if head.expires_at is None or head.expires_at >= now:
                break
            if not budget:
                # A long expired backlog (paged out, read back to be dropped) goes in
                # batches, so other work runs in between.
                self._scheduler.call_soon(self._expire_head)
                return
            budget -= 1
            self.ready.popleft()
            self._expired(head)
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        head = self.ready.peek()
        due = head.expires_at if head is not None else None
        if due == self._expiry_due:
            return
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        self._expiry_due = due
        if due is not None and not self.deleted:
            delay = max(0.0, due - self._scheduler.time()) + 0.001
            self._expiry_timer = self._scheduler.call_later(delay, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        self._expiry_due = None
        self._expire_head()

    def touch(self) -> None:
        """Note use: restarts the ``x-expires`` countdown."""
        if self.args.expires is None or self.deleted:
            return
        self._cancel_unused_timer()
        if not self.consumers:
            self._unused_timer = self._scheduler.call_later(
                self.args.expires / 1000, self._on_unused_timer
            )

    def _cancel_unused_timer(self) -> None:
        if self._unused_timer is not None:
            self._unused_timer.cancel()
            self._unused_timer = None

    def _on_unused_timer(self) -> None:
        self._unused_timer = None
        if not self.consumers and not self.deleted:
            self._hooks.queue_unused(cast("Queue", self))
