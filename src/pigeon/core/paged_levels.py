"""A priority queue's paged backlog: one :class:`~pigeon.core.paging.PagedReady` per
priority level, as RabbitMQ keeps one backing queue per priority."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from pigeon.core.paging import PagedReady

if TYPE_CHECKING:
    from pigeon.core.queue import Entry


class PagedLevels:
    """A priority queue's ready messages: one :class:`PagedReady` per priority level."""

    __slots__ = ("_levels",)

    def __init__(self, levels: list[PagedReady]) -> None:
        self._levels = levels

    def __len__(self) -> int:
        return sum(level.count for level in self._levels)

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self._levels):
            yield from level

    @property
    def count(self) -> int:
        return len(self)

    @property
    def bytes(self) -> int:
        return sum(level.bytes for level in self._levels)

    @property
    def middle_bytes(self) -> int:
        return sum(level.middle_bytes for level in self._levels)

    @property
    def in_memory(self) -> int:
        return sum(level.in_memory for level in self._levels)

    @property
    def paged(self) -> int:
        return sum(level.paged for level in self._levels)

    def parts(self) -> list[PagedReady]:
        return self._levels

    def needs_paging(self) -> bool:
        return any(level.needs_paging() for level in self._levels)

    def _level(self, entry: Entry) -> PagedReady:
        return self._levels[min(entry.priority, len(self._levels) - 1)]

    def append(self, entry: Entry) -> None:
        self._level(entry).append(entry)

    def _head_level(self) -> PagedReady | None:
        for level in reversed(self._levels):
            if level.count:
                return level
        return None

    def peek(self) -> Entry | None:
        level = self._head_level()
        return level.peek() if level is not None else None

    def peek_newest(self) -> Entry | None:
        newest = [entry for level in self._levels if (entry := level.peek_newest())]
        return max(newest, key=_seq) if newest else None

    def popleft(self) -> Entry:
        level = self._head_level()
        if level is None:
            raise IndexError("no ready messages")
        return level.popleft()

    def requeue(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._level(entry).requeue((entry,))

    def discard(self, seqs: set[int]) -> int:
        return sum(level.discard(seqs) for level in self._levels)

    def clear(self) -> tuple[list[Entry], list[int]]:
        entries: list[Entry] = []
        paged: list[int] = []
        for level in reversed(self._levels):
            level_entries, level_paged = level.clear()
            entries += level_entries
            paged += level_paged
        return entries, paged

    def pager_keys(self) -> list[str]:
        return [key for level in self._levels for key in level.pager_keys()]


def _seq(entry: Entry) -> int:
    return entry.seq
