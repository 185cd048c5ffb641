"""The ready messages of one queue, in delivery order.

A FIFO per priority level (one level for a queue without ``x-max-priority``).
A requeued message goes back to its original place, ahead of the messages
published after it, as RabbitMQ's classic queues do.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pigeon.core.queue import Entry


class ReadyMessages:
    __slots__ = ("_levels", "bytes", "count")

    def __init__(self, max_priority: int | None = None) -> None:
        self._levels: list[deque[Entry]] = [deque() for _ in range((max_priority or 0) + 1)]
        self.count = 0
        self.bytes = 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self._levels):
            yield from level

    def needs_paging(self) -> bool:
        """Never: these stay in memory (see :class:`pigeon.core.paging.PagedReady`)."""
        return False

    def _level(self, entry: Entry) -> deque[Entry]:
        return self._levels[min(entry.priority, len(self._levels) - 1)]

    def append(self, entry: Entry) -> None:
        levels = self._levels
        if len(levels) == 1:
            levels[0].append(entry)
        else:
            self._level(entry).append(entry)
        self.count += 1
        self.bytes += len(entry.message.body)

    def extend(self, entries: list[Entry]) -> None:
        """Append several entries of priority 0 (a queue without priorities)."""
        self._levels[0].extend(entries)
        self.count += len(entries)
        self.bytes += sum(len(entry.message.body) for entry in entries)

    def _head_level(self) -> deque[Entry] | None:
        levels = self._levels
        if len(levels) == 1:
            return levels[0] if levels[0] else None
        for level in reversed(levels):
            if level:
                return level
        return None

    def peek(self) -> Entry | None:
        level = self._head_level()
        return level[0] if level else None

    def popleft(self) -> Entry:
        levels = self._levels
        level = levels[0] if len(levels) == 1 else self._head_level()
        if not level:
            raise IndexError("no ready messages")
        entry = level.popleft()
        self.count -= 1
        self.bytes -= len(entry.message.body)
        return entry

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put delivered messages back at their original positions."""
        for entry in sorted(entries, key=_seq, reverse=True):
            put_back(self._level(entry), entry)
            self.count += 1
            self.bytes += len(entry.message.body)

    def discard(self, seqs: set[int]) -> int:
        """Drop the messages of these numbers (settled elsewhere); how many there were."""
        dropped = 0
        for level in self._levels:
            gone = [entry for entry in level if entry.seq in seqs]
            for entry in gone:
                level.remove(entry)
                self.bytes -= len(entry.message.body)
            dropped += len(gone)
        self.count -= dropped
        return dropped

    def clear(self) -> tuple[list[Entry], list[int]]:
        """Empty it: the entries, and the sequence numbers of messages kept only on disk
        (none here; see :class:`pigeon.core.paging.PagedReady`)."""
        removed = list(self)
        for level in self._levels:
            level.clear()
        self.count = 0
        self.bytes = 0
        return removed, []


def put_back(level: deque[Entry], entry: Entry) -> None:
    """Insert a requeued message where its sequence number puts it: at the front,
    unless messages requeued earlier are older still (rare)."""
    if not level or entry.seq < level[0].seq:
        level.appendleft(entry)
        return
    items = list(level)
    insort(items, entry, key=_seq)
    level.clear()
    level.extend(items)


def _seq(entry: Entry) -> int:
    return entry.seq
