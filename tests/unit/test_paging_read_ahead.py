"""A paged backlog reads its next batch ahead, off the loop, and keeps queue order.

Sans-IO: the store's fetch and the pager's are fakes that answer when the test
says so, so the test decides whether an answer comes before or after the head runs
dry. Persistent messages of a durable queue come from the store, the others
(transient ones) from the pager; a batch of both joins the head once both answered.
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


class Pages:
    """The pager: messages written under one key; fetches wait until answered."""

    def __init__(self) -> None:
        self.memory = MemoryBudget()
        self.messages: dict[int, Message] = {}
        self.waiting: list[tuple[list[int], Callable[[Found], object]]] = []
        self.reads = 0
        self.discarded = 0

    def read(self, vhost: str, queue: str, seqs: list[int]) -> Found:
        """The blocking read (the head ran dry)."""
        self.reads += 1
        return self._found(seqs)

    def _found(self, seqs: list[int]) -> Found:
        return [(seq, self.messages[seq]) for seq in seqs if seq in self.messages]

    def fetch(
        self, vhost: str, queue: str, seqs: list[int], done: Callable[[Found], object]
    ) -> None:
        assert seqs == sorted(seqs) and all(seq > 0 for seq in seqs)
        self.waiting.append((seqs, done))

    def discard(self, vhost: str, queue: str, upto: int) -> None:
        assert upto >= self.discarded, "rows are forgotten in order"
        self.discarded = upto

    def answer(self) -> None:
        waiting, self.waiting = self.waiting, []
        for seqs, done in waiting:
            done(self._found(seqs))


def mixed_backlog(count: int, durable: bool = True) -> tuple[PagedReady, Disk, Pages]:
    """``count`` messages paged out as a queue pages them: odd numbers persistent (in
    the store), even ones transient (in the pager); every one transient if not durable."""
    disk, pages = Disk(0), Pages()
    ready = PagedReady(
        "/",
        "q",
        pages,  # type: ignore[arg-type]
        pages.memory,
        disk.load if durable else None,
        make,
        keep=0,
        head_window=0,
        fetch=disk.fetch if durable else None,  # type: ignore[arg-type]
    )
    for seq in range(1, count + 1):
        message = Message("", "q", Properties(), str(seq).encode())
        entry = Entry(message, seq, 0, None, 0.0)
        entry.persisted = durable and seq % 2 == 1
        (disk.messages if entry.persisted else pages.messages)[seq] = message
        ready.append(entry)
    assert len(ready.page_out_candidates()) == count
    assert ready.page_out(count, transient_written=True) == count
    assert ready.paged == count and ready.in_memory == 0
    return ready, disk, pages


def test_a_batch_of_both_kinds_is_read_ahead_and_kept_in_order() -> None:
    ready, disk, pages = mixed_backlog(3 * PAGE_IN_BATCH)
    got = [ready.popleft() for _ in range(PAGE_IN_BATCH // 2 + 1)]
    assert disk.waiting and pages.waiting, "both halves of the next batch are fetched"
    [(stored, _)] = disk.waiting
    [(paged, _)] = pages.waiting
    batch = range(PAGE_IN_BATCH + 1, 2 * PAGE_IN_BATCH + 1)
    assert stored == [seq for seq in batch if seq % 2] and paged == [s for s in batch if s % 2 == 0]
    in_memory = ready.in_memory
    pages.answer()
    assert ready.in_memory == in_memory, "half a batch does not land"
    disk.answer()
    assert ready.in_memory == in_memory + PAGE_IN_BATCH
    assert pages.discarded == 2 * PAGE_IN_BATCH
    while len(ready):
        disk.answer()
        pages.answer()
        got.append(ready.popleft())
    assert [entry.seq for entry in got] == list(range(1, 3 * PAGE_IN_BATCH + 1))
    # redelivered comes from make(): set for the store's messages, never for the pager's
    assert all(entry.persisted == entry.redelivered == (entry.seq % 2 == 1) for entry in got)
    assert (disk.loads, pages.reads) == (1, 1)  # the first batch only: later ones by fetch


def test_a_queue_that_is_not_durable_reads_its_pages_ahead() -> None:
    ready, disk, pages = mixed_backlog(3 * PAGE_IN_BATCH, durable=False)
    got = []
    while len(ready):
        pages.answer()
        got.append(ready.popleft().seq)
    assert got == list(range(1, 3 * PAGE_IN_BATCH + 1))
    assert pages.reads == 1 and disk.loads == 0


def test_a_late_pager_answer_is_ignored_once_the_head_ran_dry() -> None:
    ready, disk, pages = mixed_backlog(2 * PAGE_IN_BATCH)
    got = [ready.popleft().seq for _ in range(PAGE_IN_BATCH + 10)]  # past the head: blocks
    assert pages.reads == 2 and disk.loads == 2
    disk.answer()
    pages.answer()  # too late: those messages were read meanwhile
    got += [ready.popleft().seq for _ in range(len(ready))]
    assert got == list(range(1, 2 * PAGE_IN_BATCH + 1))
    assert len(ready) == 0 and ready.paged == 0 and ready.peek() is None


def test_a_purge_during_a_pager_fetch_drops_its_batch_too() -> None:
    ready, disk, pages = mixed_backlog(2 * PAGE_IN_BATCH)
    for _ in range(PAGE_IN_BATCH // 2 + 1):
        ready.popleft()
    assert pages.waiting
    entries, on_disk = ready.clear()
    left = range(PAGE_IN_BATCH // 2 + 2, 2 * PAGE_IN_BATCH + 1)
    assert sorted(e.seq for e in entries) == [seq for seq in left if seq <= PAGE_IN_BATCH]
    # The pager's keys are negated: the queue drops the pager's rows for them.
    assert on_disk == [seq if seq % 2 else -seq for seq in left if seq > PAGE_IN_BATCH]
    discarded = pages.discarded
    pages.answer()
    disk.answer()
    assert len(ready) == 0 and ready.peek() is None and ready.in_memory == 0
    assert pages.discarded == discarded, "a cancelled fetch forgets nothing"
