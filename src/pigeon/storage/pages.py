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
per wake-up. Reads (paging back in) are indexed reads: :meth:`PageFile.fetch` on a
reader thread with its own connection, answered on the loop, as the store's
``fetch_messages``; :meth:`PageFile.read` at once on the loop thread, for a head
that ran dry before its fetch came back. A fetch asked while writes are still on
their way waits behind them in the writer's queue, and only then goes to the
reader, so that it never misses a page written before it was asked.
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

# A job for the writer: ("write", vhost, queue, items, done) | ("discard", vhost, queue,
# upto) | ("drop", vhost, queue) | ("fetch", vhost, queue, seqs, done): handed on to
# the reader once the writes before it are committed.
Job = tuple[Any, ...]
Found = list[tuple[int, Message]]
# A job for the reader: (vhost, queue, seqs, done).
Fetch = tuple[str, str, list[int], Callable[[Found], object]]


class PageFile:
    """The :class:`pigeon.core.ports.Pager` of a data folder."""

    def __init__(self, folder: Path, bodies: BodyCodec, loop: asyncio.AbstractEventLoop) -> None:
        self.path = folder / PAGES_NAME
        self._loop = loop
        _remove(self.path)  # what the last run paged out is gone with it (never durable)
        self._writer = _connect(self.path)
        self._writer.executescript(_SCHEMA)
        self._reader = _connect(self.path)  # the loop thread's (read)
        self._write_rows = rows.MessageRows(bodies)  # one per thread: caches are not locked
        self._read_rows = rows.MessageRows(bodies)
        self._bodies = bodies
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._fetches: queue.SimpleQueue[Fetch | None] = queue.SimpleQueue()
        self.memory = MemoryBudget()  # the broker sets its limit (``paging_memory``)
        # Messages handed to the thread and not written yet (flow control reads it).
        self.backlog = 0
        self._waiting: list[Callable[[], object]] = []
        self._thread = threading.Thread(target=self._run, name="pigeon-pages", daemon=True)
        self._thread.start()
        self._fetcher = threading.Thread(
            target=self._serve_fetches, name="pigeon-pages-reader", daemon=True
        )
        self._fetcher.start()

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

    def read(self, vhost: str, queue: str, seqs: list[int]) -> Found:
        """The messages of ``seqs`` (ascending, written before), in that order."""
        return _read(self._reader, self._read_rows, vhost, queue, seqs)

    def fetch(
        self, vhost: str, queue: str, seqs: list[int], done: Callable[[Found], object]
    ) -> None:
        """:meth:`read` on the reader thread: ``done(found)`` runs on the loop later. Writes
        handed over before are read (the fetch waits behind them if they are not done)."""
        if not seqs:
            done([])
        elif self.backlog:
            self._inbox.put(("fetch", vhost, queue, seqs, done))
        else:
            self._fetches.put((vhost, queue, seqs, done))

    def close(self) -> None:
        """Stop the threads and delete the file: paged transient messages end here
        (fetches not answered yet never will be)."""
        self._inbox.put(None)
        self._thread.join()  # it may still hand fetches on: the reader stops after it
        self._fetches.put(None)
        self._fetcher.join()
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
                elif job[0] == "fetch":  # the writes before it are committed now
                    self._fetches.put((job[1], job[2], job[3], job[4]))
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
                elif name == "drop":
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

    # -- reader thread ---------------------------------------------------------------

    def _serve_fetches(self) -> None:
        conn = _connect(self.path)
        message_rows = rows.MessageRows(self._bodies)
        try:
            while (job := self._fetches.get()) is not None:
                vhost, name_of_queue, seqs, done = job
                try:
                    found = _read(conn, message_rows, vhost, name_of_queue, seqs)
                except sqlite3.Error as error:  # the answer leaves them out: gone
                    log.warning("reading paged messages of %r failed: %s", name_of_queue, error)
                    found = []
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    self._loop.call_soon_threadsafe(done, found)
        finally:
            conn.close()


def _read(
    conn: sqlite3.Connection,
    message_rows: rows.MessageRows,
    vhost: str,
    queue: str,
    seqs: list[int],
) -> Found:
    """The paged messages of ``seqs`` (ascending) in that order; damaged ones left out."""
    if not seqs:
        return []
    found: dict[int, Message] = {}
    decode = message_rows.message
    wanted = set(seqs)
    for seq, header, flags, body, crc in conn.execute(_READ, (vhost, queue, seqs[0], seqs[-1])):
        if seq not in wanted:
            continue
        try:
            found[seq] = decode(vhost, queue, seq, header, flags, body, crc)
        except (ValueError, sqlite3.DatabaseError) as error:
            log.warning("dropped damaged paged message %d of queue %r: %s", seq, queue, error)
    return [(seq, found[seq]) for seq in seqs if seq in found]


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
