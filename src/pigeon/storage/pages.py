"""Where the transient messages of long backlogs wait: on disk, without durability.

A queue that pages out a backlog keeps only an index in memory. Persistent
messages of durable queues are already in the store; every other message
(transient ones, and persistent ones in queues that are not durable) is written
here instead: ``pages.db`` in the data folder, its own SQLite file so that its
writes never share a transaction, a write lock or an fsync with the store's.

Nothing here is durable, by design: writes are never fsynced (``synchronous=OFF``),
they never move the store's write positions (``written``/``durable``, which
publisher confirms compare), and the file is deleted when the store opens and
when it closes, so a transient message never comes back after a restart.

Writes run on one thread of their own, in order, grouped into one transaction
per wake-up; reads (paging back in) are indexed reads on the loop thread,
as the store's are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pigeon.core.message import Message
from pigeon.core.paging import MemoryBudget
from pigeon.storage import rows
from pigeon.storage.bodies import BodyCodec

log = logging.getLogger("pigeon.storage")

PAGES_NAME = "pages.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    vhost TEXT NOT NULL, queue TEXT NOT NULL, seq INTEGER NOT NULL, header BLOB NOT NULL,
    flags INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (vhost, queue, seq));
"""
_INSERT = "INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)"
_DISCARD = "DELETE FROM pages WHERE vhost = ? AND queue = ? AND seq <= ?"
_DROP = "DELETE FROM pages WHERE vhost = ? AND queue = ?"
_READ = (
    "SELECT seq, header, flags, body, crc FROM pages WHERE vhost = ? AND queue = ?"
    " AND seq BETWEEN ? AND ?"
)

# A job for the thread: ("write", vhost, queue, items, done) | ("discard", vhost, queue,
# upto) | ("drop", vhost, queue).
Job = tuple[Any, ...]


class PageFile:
    """The :class:`pigeon.core.ports.Pager` of a data folder."""

    def __init__(self, folder: Path, bodies: BodyCodec, loop: asyncio.AbstractEventLoop) -> None:
        self.path = folder / PAGES_NAME
        self._loop = loop
        _remove(self.path)  # what the last run paged out is gone with it (never durable)
        self._writer = _connect(self.path)
        self._writer.executescript(_SCHEMA)
        self._reader = _connect(self.path)
        self._write_rows = rows.MessageRows(bodies)  # one per thread: caches are not locked
        self._read_rows = rows.MessageRows(bodies)
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.memory = MemoryBudget()  # the broker sets its limit (``paging_memory``)
        # Messages handed to the thread and not written yet (flow control reads it).
        self.backlog = 0
        self._waiting: list[Callable[[], object]] = []
        self._thread = threading.Thread(target=self._run, name="pigeon-pages", daemon=True)
        self._thread.start()

    # -- loop thread ---------------------------------------------------------------

    def write(
        self,
        vhost: str,
        queue: str,
        items: list[tuple[int, Message]],
        done: Callable[[bool], object],
    ) -> None:
        """Write ``items`` (seq, message); ``done(written)`` runs on the loop afterwards."""
        self.backlog += len(items)
        self._inbox.put(("write", vhost, queue, items, done))

    def discard(self, vhost: str, queue: str, upto: int) -> None:
        """Forget the rows of ``queue`` up to ``upto`` (read back, or never needed)."""
        self._inbox.put(("discard", vhost, queue, upto))

    def drop(self, vhost: str, queue: str) -> None:
        """Forget every row of ``queue`` (purged or deleted)."""
        self._inbox.put(("drop", vhost, queue))

    def when_written(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop after the next write finishes (at once if idle)."""
        if self.backlog:
            self._waiting.append(callback)
        else:
            self._loop.call_soon(callback)

    def read(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        """The messages of ``seqs`` (ascending, written before), in that order."""
        if not seqs:
            return []
        found: dict[int, Message] = {}
        decode = self._read_rows.message
        wanted = set(seqs)
        for seq, header, flags, body, crc in self._reader.execute(
            _READ, (vhost, queue, seqs[0], seqs[-1])
        ):
            if seq not in wanted:
                continue
            try:
                found[seq] = decode(vhost, queue, seq, header, flags, body, crc)
            except (ValueError, sqlite3.DatabaseError) as error:
                log.warning("dropped damaged paged message %d of queue %r: %s", seq, queue, error)
        return [(seq, found[seq]) for seq in seqs if seq in found]

    def close(self) -> None:
        """Stop the thread and delete the file: paged transient messages end here."""
        self._inbox.put(None)
        self._thread.join()
        self._reader.close()
        _remove(self.path)

    def _written(self, count: int, done: Callable[[bool], object], ok: bool) -> None:
        self.backlog -= count
        done(ok)
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for callback in waiting:
                callback()

    # -- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._inbox.get()
            jobs = [job]
            # Whatever else is waiting goes into the same transaction.
            with contextlib.suppress(queue.Empty):
                while job is not None and len(jobs) < 256:
                    job = self._inbox.get_nowait()
                    jobs.append(job)
            stop = jobs[-1] is None
            work = [j for j in jobs if j is not None]
            ok = self._apply(work)
            for job in work:
                if job[0] == "write":
                    count, done = len(job[3]), job[4]
                    with contextlib.suppress(RuntimeError):  # the loop is closed
                        self._loop.call_soon_threadsafe(self._written, count, done, ok)
            if stop:
                self._writer.close()
                return

    def _apply(self, jobs: list[Job]) -> bool:
        conn = self._writer
        try:
            conn.execute("BEGIN")
            for job in jobs:
                name, vhost, name_of_queue = job[0], job[1], job[2]
                if name == "write":
                    row = self._write_rows.row
                    conn.executemany(
                        _INSERT,
                        [row(vhost, name_of_queue, seq, message) for seq, message in job[3]],
                    )
                elif name == "discard":
                    conn.execute(_DISCARD, (vhost, name_of_queue, job[3]))
                else:
                    conn.execute(_DROP, (vhost, name_of_queue))
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError, TypeError, ValueError) as error:
            # Disk full or a value SQLite cannot bind: the messages stay in memory.
            log.warning("paging out transient messages failed: %s", error)
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return False
        return True


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    # WAL: the loop reads while the thread writes. OFF: nothing here needs to survive a
    # crash (the file is deleted at start), so no write ever waits for the disk.
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
