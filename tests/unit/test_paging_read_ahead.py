"""A paged backlog reads its next batch ahead, off the loop, and keeps queue order.

Sans-IO: the store's fetch is a fake that answers when the test says so, so the
test decides whether the answer comes before or after the head runs dry.
"""

from __future__ import annotations

from collections.abc import Callable

from pigeon.core.entry import Entry
from pigeon.core.message import Message, Properties
from pigeon.core.paging import PAGE_IN_BATCH, MemoryBudget, PagedReady

Found = list[tuple[int, Message]]


class Disk:
    """Stored messages 1..n; fetches wait until answered."""

    def __init__(self, count: int) -> None:
        self.messages = {
            seq: Message("", "q", Properties(), str(seq).encode()) for seq in range(1, count + 1)
        }
        self.waiting: list[tuple[list[int], Callable[[Found], object]]] = []
        self.loads = 0

    def load(self, seqs: list[int]) -> Found:
        """The blocking read (the head ran dry)."""
        self.loads += 1
        return self.read(seqs)

    def read(self, seqs: list[int]) -> Found:
        return [(seq, self.messages[seq]) for seq in seqs if seq in self.messages]

    def fetch(self, seqs: list[int], done: Callable[[Found], object]) -> None:
        self.waiting.append((seqs, done))

    def answer(self) -> None:
        waiting, self.waiting = self.waiting, []
        for seqs, done in waiting:
            done(self.read(seqs))


def make(seq: int, message: Message, persisted: bool, expires: float | None, prio: int) -> Entry:
    entry = Entry(message, seq, prio, expires, 0.0)
    entry.persisted = persisted
    entry.redelivered = persisted
    return entry


def backlog(disk: Disk) -> PagedReady:
    ready = PagedReady(
        "/",
        "q",
        None,
        MemoryBudget(),
        disk.load,
        make,
        fetch=disk.fetch,  # type: ignore[arg-type]
    )
    ready.restore(sorted(disk.messages), 0)
    return ready


def test_the_next_batch_is_fetched_while_the_head_still_delivers() -> None:
    disk = Disk(3 * PAGE_IN_BATCH)
    ready = backlog(disk)
    first = [ready.popleft().seq for _ in range(PAGE_IN_BATCH // 2 + 1)]
    assert first == list(range(1, PAGE_IN_BATCH // 2 + 2))
    assert disk.waiting, "a fetch of the next batch is under way"
    [(asked, _)] = disk.waiting
    assert asked == list(range(PAGE_IN_BATCH + 1, 2 * PAGE_IN_BATCH + 1))
    assert disk.loads == 1  # the first batch: nothing was in memory
    rest = []
    while len(ready):
        disk.answer()  # each fetch arrives while the head still holds messages
        entry = ready.popleft()
        assert entry.redelivered
        rest.append(entry.seq)
    assert first + rest == sorted(disk.messages)
    assert disk.loads == 1  # every later batch came by fetch, none by a blocking read


def test_a_late_answer_is_ignored_once_the_head_ran_dry() -> None:
    disk = Disk(2 * PAGE_IN_BATCH)
    ready = backlog(disk)
    got = [ready.popleft().seq for _ in range(PAGE_IN_BATCH + 10)]  # past the head: blocks
    assert disk.waiting
    disk.answer()  # too late: those messages were read meanwhile
    got += [ready.popleft().seq for _ in range(len(ready))]
    assert got == sorted(disk.messages)
    assert len(ready) == 0 and ready.paged == 0


def test_a_purge_during_a_fetch_drops_its_batch_too() -> None:
    disk = Disk(2 * PAGE_IN_BATCH)
    ready = backlog(disk)
    for _ in range(PAGE_IN_BATCH // 2 + 1):
        ready.popleft()
    assert disk.waiting
    entries, on_disk = ready.clear()
    assert sorted([e.seq for e in entries] + on_disk) == list(
        range(PAGE_IN_BATCH // 2 + 2, 2 * PAGE_IN_BATCH + 1)
    )
    disk.answer()
    assert len(ready) == 0 and ready.peek() is None
