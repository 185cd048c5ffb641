"""How one queue moves its backlog to disk (the ready messages themselves: paging.py).

Persistent messages of a durable queue are in the store already: paging them
out waits for the store's barrier (``sync``). Every other message is written to
the :class:`~pigeon.core.ports.Pager`, which is not durable, never synced, and
never moves the store's write positions, so no publisher confirm waits for it or
goes out because of it. Once written, the entries leave memory; one request is
outstanding per queue at a time, and what arrived meanwhile goes with the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pigeon.core.paged_levels import PagedLevels
from pigeon.core.paging import (
    HEAD_WINDOW,
    PAGE_AFTER,
    PAGE_IN_BATCH,
    EntryMaker,
    Fetcher,
    Loader,
    PagedReady,
)
from pigeon.core.ports import Pager, Store

if TYPE_CHECKING:
    from pigeon.core.queue import Entry, Queue


def paged_ready(
    queue: Queue,
    pager: Pager,
    load: Loader | None,
    make: EntryMaker,
    fetch: Fetcher | None = None,
) -> PagedReady | PagedLevels:
    """The ready messages of a queue that pages: one backlog, or one per priority level
    (each its own pager key; together they keep about as much in memory as one)."""
    levels = (queue.args.max_priority or 0) + 1
    if levels == 1:
        return PagedReady(queue.vhost, queue.name, pager, pager.memory, load, make, fetch=fetch)
    return PagedLevels(
        [
            PagedReady(
                queue.vhost,
                f"{queue.name}\x00{priority}",
                pager,
                pager.memory,
                load,
                make,
                priority=priority,
                keep=max(PAGE_IN_BATCH, PAGE_AFTER // levels),
                head_window=max(PAGE_IN_BATCH // 4, HEAD_WINDOW // levels),
                fetch=fetch,
            )
            for priority in range(levels)
        ]
    )


class PageOut:
    __slots__ = ("_pager", "_queue", "_store", "busy")

    def __init__(self, queue: Queue, pager: Pager, store: Store | None) -> None:
        self._queue = queue
        self._pager = pager
        self._store = store  # the durable queue's store, None for any other queue
        self.busy = False  # a request is outstanding

    def request(self) -> None:
        """Write the oldest messages of a long tail to disk, then drop them from memory."""
        queue = self._queue
        ready = queue.ready
        # While recovering, the stored messages still to come go in front of the middle.
        if self.busy or queue.deleted or queue.recovering:
            return
        if not isinstance(ready, PagedReady | PagedLevels):
            return
        jobs = [
            (part, entries) for part in ready.parts() if (entries := part.page_out_candidates())
        ]
        if not jobs:
            return
        self.busy = True
        remaining = len(jobs)
        progress = True

        def finished(moved: bool) -> None:
            nonlocal remaining, progress
            remaining -= 1
            progress = progress and moved
            if remaining:
                return
            self.busy = False
            # More arrived meanwhile: go on (not after a failed write: the next publish
            # tries again, rather than a loop of failures).
            if progress and queue.ready.needs_paging():
                self.request()

        for part, entries in jobs:
            self._page_part(part, entries, finished)

    def _page_part(
        self, part: PagedReady, entries: list[Entry], finished: Callable[[bool], object]
    ) -> None:
        upto = entries[-1].seq
        transient = [(entry.seq, entry.message) for entry in entries if not entry.persisted]
        store, queue = self._store, self._queue

        def moved(written: bool) -> None:
            if not queue.deleted:
                part.page_out(upto, written)
            finished(written)

        def written(ok: bool) -> None:
            if store is not None and len(transient) < len(entries):
                store.sync(lambda: moved(ok))
            else:
                moved(ok)

        if transient:
            self._pager.write(queue.vhost, part.key, transient, written)
        else:
            written(True)

    def drop(self) -> None:
        """The queue was purged or deleted: forget what it wrote to the pager."""
        ready = self._queue.ready
        if isinstance(ready, PagedReady | PagedLevels):
            for key in ready.pager_keys():
                self._pager.drop(self._queue.vhost, key)
