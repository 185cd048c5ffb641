"""Ready messages of a long backlog: a window in memory, the rest only on disk.

A durable queue whose persistent messages are already in the store does not
need them in memory until they are about to be delivered. This keeps three
segments, in queue order:

    head (Entry objects)  |  middle (sequence numbers only)  |  tail (Entry objects)

New messages join the tail. Once the store has them on disk, the oldest
entries of a long tail move to the middle as bare sequence numbers (8 bytes
each). When the head runs dry, the next batch of the middle is read back from
the store. Requeued messages come back to the head, where they were.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from pigeon.core.message import Message
from pigeon.core.ready import put_back

if TYPE_CHECKING:
    from pigeon.core.queue import Entry

# Messages kept in memory (head + tail) before the oldest of the tail are paged out.
PAGE_AFTER = 20_000
# How many of the oldest messages stay in memory while the rest is paged out.
HEAD_WINDOW = 5_000
# How many messages are read back from the store at a time.
PAGE_IN_BATCH = 2_000

Loader = Callable[[list[int]], list[tuple[int, Message]]]
EntryMaker = Callable[[int, Message], "Entry"]


class PagedReady:
    __slots__ = ("_head", "_load", "_make", "_middle", "_middle_start", "_tail", "bytes",
                 "count", "middle_bytes")

    def __init__(self, load: Loader, make: EntryMaker) -> None:
        self._head: deque[Entry] = deque()
        self._middle = array("q")
        self._middle_start = 0
        self._tail: deque[Entry] = deque()
        self._load = load
        self._make = make
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
        return len(self._middle) - self._middle_start

    def append(self, entry: Entry) -> None:
        self._tail.append(entry)
        self.count += 1
        self.bytes += len(entry.message.body)

    def page_out(self, synced_seq: int) -> int:
        """Move the oldest tail entries that are on disk to the middle; returns how many."""
        moved = 0
        head, tail = self._head, self._tail
        if not self.paged:
            # The oldest are delivered next: keep them in memory, page out what follows.
            while tail and len(head) < HEAD_WINDOW:
                head.append(tail.popleft())
        # Up to ~PAGE_AFTER entries per call on a filling queue: the loop keeps to locals.
        excess = min(len(head) + len(tail) - PAGE_AFTER, len(tail))
        to_middle = self._middle.append
        paged_bytes = 0
        while moved < excess:
            entry = tail[0]
            if entry.seq > synced_seq or not entry.persisted or entry.expires_at is not None:
                break
            tail.popleft()
            to_middle(entry.seq)
            paged_bytes += len(entry.message.body)
            moved += 1
        self.middle_bytes += paged_bytes
        return moved

    def restore(self, seqs: Iterable[int], stored_bytes: int) -> None:
        """Recovered messages, known by sequence number only, join the middle."""
        before = len(self._middle)
        self._middle.extend(seqs)
        self.count += len(self._middle) - before
        self.bytes += stored_bytes
        self.middle_bytes += stored_bytes

    def _fill_head(self) -> None:
        if self._head or not self.paged:
            return
        start = self._middle_start
        end = min(start + PAGE_IN_BATCH, len(self._middle))
        seqs = self._middle[start:end].tolist()
        self._middle_start = end
        if end * 2 > len(self._middle) and end > PAGE_IN_BATCH:
            del self._middle[:end]
            self._middle_start = 0
        loaded = self._load(seqs)
        for seq, message in loaded:
            self.middle_bytes -= len(message.body)
            self._head.append(self._make(seq, message))
        if self.middle_bytes < 0:  # stored sizes (compressed) were smaller than the bodies
            self.bytes -= self.middle_bytes
            self.middle_bytes = 0
        missing = len(seqs) - len(loaded)
        if missing:
            # Rows the store could not return (damaged and dropped): they are gone.
            self.count -= missing
        if not self.paged:
            self.bytes -= self.middle_bytes  # account for any bodies never read back
            self.middle_bytes = 0

    def _front(self) -> deque[Entry] | None:
        self._fill_head()
        if self._head:
            return self._head
        return self._tail if self._tail else None

    def peek_newest(self) -> Entry | None:
        if self._tail:
            return self._tail[-1]
        return None

    def peek(self) -> Entry | None:
        front = self._front()
        return front[0] if front else None

    def popleft(self) -> Entry:
        front = self._front()
        if front is None:
            raise IndexError("no ready messages")
        entry = front.popleft()
        self.count -= 1
        self.bytes -= len(entry.message.body)
        return entry

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Delivered messages are older than anything still ready: back to the head."""
        for entry in sorted(entries, key=_seq, reverse=True):
            put_back(self._head, entry)
            self.count += 1
            self.bytes += len(entry.message.body)

    def clear(self) -> tuple[list[Entry], list[int]]:
        """Empty it: the entries that were in memory, and the sequence numbers on disk only."""
        entries = [*self._head, *self._tail]
        paged = self._middle[self._middle_start:].tolist()
        self._head.clear()
        self._tail.clear()
        self._middle = array("q")
        self._middle_start = 0
        self.count = self.bytes = self.middle_bytes = 0
        return entries, paged


def _seq(entry: Entry) -> int:
    return entry.seq
