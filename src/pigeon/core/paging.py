"""Ready messages of a long backlog: a window in memory, the rest only on disk.

A queue on a broker with a data folder does not need its backlog in memory
until it is about to be delivered. :class:`PagedReady` keeps three segments,
in queue order:

    head (Entry objects)  |  middle (keys only)  |  tail (Entry objects)

New messages join the tail. Once they are on disk, the oldest entries of a
long tail move to the middle as bare keys (8 bytes each, and 8 for an expiry
time): the sequence number of a persistent message of a durable queue (already
in the store), or its negation for any other message, which was written to the
:class:`~pigeon.core.ports.Pager` (not durable; gone after a restart). When the
head runs low, the next batch of the middle is read ahead, off the loop (the
store's ``fetch_messages`` and the pager's ``fetch`` together), and joins the head
when both have answered; only a head that runs dry first waits for a read.
Requeued messages come back to the head, where they were. A priority queue keeps
one of these per priority level
(:class:`~pigeon.core.paged_levels.PagedLevels`), as RabbitMQ keeps one backing
queue per priority.

When a queue pages: past :data:`PAGE_AFTER` messages in memory, or, for every
queue, while the node's :class:`MemoryBudget` is exceeded (the bodies of ready
messages held in memory, all queues together, or the broker's resident memory
as the resource monitor sees it).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

from pigeon.core.message import Message
from pigeon.core.ready import put_back

if TYPE_CHECKING:
    from pigeon.core.ports import Pager
    from pigeon.core.queue import Entry

# Messages kept in memory (head + tail) before the oldest of the tail are paged out.
PAGE_AFTER = 20_000
# How many of the oldest messages stay in memory while the rest is paged out.
HEAD_WINDOW = 5_000
# How many messages are read back from the store at a time; also the head window
# while the node is over its memory budget.
PAGE_IN_BATCH = 2_000

_NO_EXPIRY = math.nan

Loader = Callable[[list[int]], list[tuple[int, Message]]]
# (seqs, done): the store's fetch_messages for one queue; done(found) runs on the loop.
Fetcher = Callable[[list[int], Callable[[list[tuple[int, Message]]], object]], None]
# (seq, message, persisted, expires_at, priority) -> Entry
EntryMaker = Callable[[int, Message, bool, "float | None", int], "Entry"]


class MemoryBudget:
    """Bytes of message bodies that the ready messages of all queues hold in memory.

    ``limit`` is the ``paging_memory`` setting in bytes; ``pressed`` is set by the
    resource monitor while the broker's resident memory is above it (or the memory
    alarm is on). Over budget, every queue that grows pages out all but its head.
    """

    __slots__ = ("flow_pauses", "limit", "pressed", "used")

    def __init__(self, limit: int = 2**62) -> None:
        self.limit = limit
        self.used = 0
        self.pressed = False
        self.flow_pauses = 0  # times a publisher waited for the pager (metrics)

    @property
    def over(self) -> bool:
        return self.pressed or self.used > self.limit


class PagedReady:
    __slots__ = (
        "_ahead",
        "_expires",
        "_fetch",
        "_head",
        "_load",
        "_make",
        "_middle",
        "_middle_start",
        "_pager",
        "_tail",
        "_vhost",
        "bytes",
        "count",
        "head_window",
        "keep",
        "key",
        "memory",
        "middle_bytes",
        "priority",
        "used_pager",
    )

    def __init__(
        self,
        vhost: str,
        key: str,
        pager: Pager,
        memory: MemoryBudget,
        load: Loader | None,
        make: EntryMaker,
        *,
        priority: int = 0,
        keep: int = PAGE_AFTER,
        head_window: int = HEAD_WINDOW,
        fetch: Fetcher | None = None,
    ) -> None:
        self._head: deque[Entry] = deque()
        self._middle = array("q")
        self._expires = array("d")  # parallel to _middle: absolute expiry, NaN for none
        self._middle_start = 0
        self._tail: deque[Entry] = deque()
        self._vhost = vhost
        self.key = key
        self._pager = pager
        self._load = load  # persistent messages from the store (None: a queue not durable)
        # The same, off the loop: the next batch is read ahead while the head still
        # holds messages to deliver (see _read_ahead).
        self._fetch = fetch
        self._ahead: _Ahead | None = None
        self._make = make
        self.memory = memory
        self.priority = priority  # of every message here (a level of a priority queue)
        self.keep = keep
        self.head_window = head_window
        self.used_pager = False
        self.count = 0
        self.bytes = 0
        self.middle_bytes = 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Entry]:
        """The messages in memory (a paged-out middle is not read back for this)."""
        yield from self._head
        yield from self._tail

    @property
    def in_memory(self) -> int:
        return len(self._head) + len(self._tail)

    @property
    def paged(self) -> int:
        """Messages on disk only (being read ahead included)."""
        ahead = self._ahead
        return len(self._middle) - self._middle_start + (len(ahead.keys) if ahead else 0)

    def parts(self) -> list[PagedReady]:
        return [self]

    def needs_paging(self) -> bool:
        """Whether the tail should go to disk now (checked after messages arrived)."""
        return bool(self._tail) and (
            len(self._head) + len(self._tail) > self.keep or self.memory.over
        )

    def append(self, entry: Entry) -> None:
        self._tail.append(entry)
        self.count += 1
        size = len(entry.message.body)
        self.bytes += size
        self.memory.used += size

    def extend(self, entries: list[Entry]) -> None:
        """Append several entries (a run of publishes)."""
        self._tail.extend(entries)
        self.count += len(entries)
        size = sum(len(entry.message.body) for entry in entries)
        self.bytes += size
        self.memory.used += size

    # -- paging out ------------------------------------------------------------------

    def page_out_candidates(self) -> list[Entry]:
        """The oldest entries of the tail that should go to disk, in order."""
        head, tail = self._head, self._tail
        pressed = self.memory.over
        window = min(self.head_window, PAGE_IN_BATCH) if pressed else self.head_window
        if not self.paged:
            # The oldest are delivered next: keep them in memory, page out what follows.
            while tail and len(head) < window:
                head.append(tail.popleft())
        keep = 0 if pressed else max(0, self.keep - len(head))
        excess = len(tail) - keep
        if excess <= 0:
            return []
        return list(islice(tail, excess))

    def page_out(self, upto: int, transient_written: bool) -> int:
        """Move the oldest tail entries up to seq ``upto`` to the middle: the persistent
        ones are on disk in the store, the others in the pager if ``transient_written``."""
        tail = self._tail
        to_middle, to_expires = self._middle.append, self._expires.append
        moved = paged_bytes = 0
        while tail:
            entry = tail[0]
            if entry.seq > upto:
                break
            if entry.persisted:
                to_middle(entry.seq)
            elif transient_written:
                to_middle(-entry.seq)
                self.used_pager = True
            else:
                break
            tail.popleft()
            expires_at = entry.expires_at
            to_expires(_NO_EXPIRY if expires_at is None else expires_at)
            paged_bytes += len(entry.message.body)
            moved += 1
        self.middle_bytes += paged_bytes
        self.memory.used -= paged_bytes
        return moved

    def restore(
        self, seqs: Iterable[int], stored_bytes: int, expires_at: float | None = None
    ) -> None:
        """Recovered messages, known by sequence number only, join the middle."""
        before = len(self._middle)
        self._middle.extend(seqs)
        added = len(self._middle) - before
        self._expires.extend([_NO_EXPIRY if expires_at is None else expires_at] * added)
        self.count += added
        self.bytes += stored_bytes
        self.middle_bytes += stored_bytes

    # -- paging in -------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[int], list[float]]:
        """The next keys of the middle (and their expiries), taken out of it."""
        start = self._middle_start
        end = min(start + PAGE_IN_BATCH, len(self._middle))
        keys = self._middle[start:end].tolist()
        expiries = self._expires[start:end].tolist()
        self._middle_start = end
        if end * 2 > len(self._middle) and end > PAGE_IN_BATCH:
            del self._middle[:end]
            del self._expires[:end]
            self._middle_start = 0
        return keys, expiries

    def _fill_head(self) -> None:
        """The head ran dry: read the next batch now (the one being read ahead, if any:
        its answer, when it comes, is ignored)."""
        ahead = self._ahead
        if ahead is not None:
            self._ahead = None
            ahead.cancelled = True
            keys, expiries = ahead.keys, ahead.expiries
        else:
            keys, expiries = self._take_batch()
        self._land(keys, expiries, self._read(keys))

    def _read_ahead(self) -> None:
        """Start reading the next batch off the loop: its persistent messages from the
        store, the others from the pager. It joins the head once both have answered
        (after what the head holds, before the rest of the middle: queue order)."""
        ahead = self._ahead = _Ahead(*self._take_batch())
        stored = [key for key in ahead.keys if key > 0]
        paged = [-key for key in ahead.keys if key < 0]
        loaded: dict[int, Message] = {}
        waiting = 1 + bool(stored) + bool(paged)  # the answers, and the end of this call

        def arrived(found: Iterable[tuple[int, Message]]) -> None:
            nonlocal waiting
            loaded.update(found)
            waiting -= 1
            if waiting or ahead.cancelled:
                return
            self._ahead = None
            if paged:  # read once, never again (as in _read_pager)
                self._pager.discard(self._vhost, self.key, paged[-1])
            self._land(ahead.keys, ahead.expiries, loaded)

        def from_pager(found: list[tuple[int, Message]]) -> None:
            arrived((-seq, message) for seq, message in found)

        if stored:
            assert self._fetch is not None
            self._fetch(stored, arrived)
        if paged:
            self._pager.fetch(self._vhost, self.key, paged, from_pager)
        arrived(())

    def _land(self, keys: list[int], expiries: list[float], loaded: dict[int, Message]) -> None:
        make, head, priority = self._make, self._head, self.priority
        loaded_bytes = 0
        for key, expires_at in zip(keys, expiries, strict=True):
            message = loaded.get(key)
            if message is None:
                # A row the store could not return (damaged and dropped): it is gone.
                self.count -= 1
                continue
            loaded_bytes += len(message.body)
            head.append(
                make(
                    abs(key),
                    message,
                    key > 0,
                    None if math.isnan(expires_at) else expires_at,
                    priority,
                )
            )
        self.middle_bytes -= loaded_bytes
        self.memory.used += loaded_bytes
        if self.middle_bytes < 0:  # stored sizes (compressed) were smaller than the bodies
            self.bytes -= self.middle_bytes
            self.middle_bytes = 0
        if not self.paged:
            self.bytes -= self.middle_bytes  # account for any bodies never read back
            self.middle_bytes = 0

    def _read(self, keys: list[int]) -> dict[int, Message]:
        stored = [key for key in keys if key > 0]
        found: dict[int, Message] = {}
        if stored and self._load is not None:
            found.update(self._load(stored))
        self._read_pager(keys, found)
        return found

    def _read_pager(self, keys: list[int], found: dict[int, Message]) -> None:
        """Add the messages of ``keys`` that are in the pager (negative keys) to ``found``."""
        paged = [-key for key in keys if key < 0]
        if paged:
            found.update(
                (-seq, message) for seq, message in self._pager.read(self._vhost, self.key, paged)
            )
            # Read once, never again: rows up to here (and any written for messages
            # delivered before they were paged out) are of no use any more.
            self._pager.discard(self._vhost, self.key, paged[-1])

    # -- delivery --------------------------------------------------------------------

    def peek_newest(self) -> Entry | None:
        if self._tail:
            return self._tail[-1]
        return None

    def peek(self) -> Entry | None:
        head = self._head
        while not head and self.paged:
            self._fill_head()
        if head:
            return head[0]
        return self._tail[0] if self._tail else None

    def popleft(self) -> Entry:
        front = self._head
        if not front:
            while not front and self.paged:
                self._fill_head()
            if not front:
                front = self._tail
                if not front:
                    raise IndexError("no ready messages")
        entry = front.popleft()
        self.count -= 1
        size = len(entry.message.body)
        self.bytes -= size
        self.memory.used -= size
        if (
            len(self._head) <= PAGE_IN_BATCH // 2
            and self._ahead is None
            and len(self._middle) > self._middle_start
        ):
            self._read_ahead()
        return entry

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Delivered messages are older than anything still ready: back to the head."""
        for entry in sorted(entries, key=_seq, reverse=True):
            put_back(self._head, entry)
            self.count += 1
            size = len(entry.message.body)
            self.bytes += size
            self.memory.used += size

    def discard(self, seqs: set[int]) -> int:
        """Drop the messages of these numbers (settled elsewhere); how many there were.
        Stored ones only: a number in the middle is a store's (positive) key."""
        dropped = 0
        for part in (self._head, self._tail):
            gone = [entry for entry in part if entry.seq in seqs]
            for entry in gone:
                part.remove(entry)
                size = len(entry.message.body)
                self.bytes -= size
                self.memory.used -= size
            dropped += len(gone)
        ahead = self._ahead
        if ahead is not None:
            kept = [
                (k, e) for k, e in zip(ahead.keys, ahead.expiries, strict=True) if k not in seqs
            ]
            dropped += len(ahead.keys) - len(kept)
            ahead.keys, ahead.expiries = [k for k, _ in kept], [e for _, e in kept]
        start, middle, expires = self._middle_start, self._middle, self._expires
        keep = [i for i in range(start, len(middle)) if middle[i] not in seqs]
        if len(keep) < len(middle) - start:
            dropped += len(middle) - start - len(keep)
            self._middle = array("q", (middle[i] for i in keep))
            self._expires = array("d", (expires[i] for i in keep))
            self._middle_start = 0
        self.count -= dropped
        return dropped

    def clear(self) -> tuple[list[Entry], list[int]]:
        """Empty it: the entries that were in memory, and the keys of those on disk only
        (sequence numbers in the store; negated, in the pager, whose rows the queue drops)."""
        entries = [*self._head, *self._tail]
        paged = self._middle[self._middle_start :].tolist()
        ahead, self._ahead = self._ahead, None
        if ahead is not None:  # older than the middle; never to land now
            ahead.cancelled = True
            paged[:0] = ahead.keys
        self.memory.used -= self.bytes - self.middle_bytes
        self._head.clear()
        self._tail.clear()
        self._middle = array("q")
        self._expires = array("d")
        self._middle_start = 0
        self.count = self.bytes = self.middle_bytes = 0
        return entries, paged

    def pager_keys(self) -> list[str]:
        """The pager keys this has written under (for dropping them)."""
        return [self.key] if self.used_pager else []


class _Ahead:
    """A batch of the middle being read ahead."""

    __slots__ = ("cancelled", "expiries", "keys")

    def __init__(self, keys: list[int], expiries: list[float]) -> None:
        self.keys = keys
        self.expiries = expiries
        self.cancelled = False


def _seq(entry: Entry) -> int:
    return entry.seq


def paged_out(ready: object) -> tuple[int, int]:
    """(messages, bytes) of a queue's ready messages that are on disk only (a
    :class:`PagedReady` or a :class:`~pigeon.core.paged_levels.PagedLevels`)."""
    return getattr(ready, "paged", 0), getattr(ready, "middle_bytes", 0)
