"""Reads of stored messages: paging a backlog back in, restoring a queue after a start.

SQLite's readers see only committed transactions, so a message whose add is still
in a batch (pending on the loop, or being written) is answered from that batch, at
the call; the others come from the database. :meth:`MessageReader.fetch` reads
them on a thread of its own, with its own connection, and hands the result to the
loop (the shape of a fetch from a replicated log); :meth:`MessageReader.read_messages`
reads them at once, on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from pigeon.core.message import Message
from pigeon.storage import rows
from pigeon.storage.bodies import BodyCodec
from pigeon.storage.database import reader
from pigeon.storage.writer import Batch

log = logging.getLogger("pigeon.storage")


Found = list[tuple[int, Message]]
# A job for the thread: what to do with its connection and row decoder, and whom to
# hand the result on the loop.
Job = tuple[Callable[[sqlite3.Connection, rows.MessageRows], Any], Callable[[Any], object]]


class MessageReader:
    """The read side of :class:`pigeon.storage.sqlite.SQLiteStore`."""

    def __init__(self, bodies: BodyCodec, batches: Callable[[], Iterable[Batch]]) -> None:
        self._bodies = bodies
        self._rows = rows.MessageRows(bodies)  # one per thread: caches are not locked
        self._batches = batches  # the batches not committed yet, newest first
        self.connection: sqlite3.Connection | None = None  # the loop thread's
        self._inbox: SimpleQueue[Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        """Open the loop thread's connection and start the reading thread."""
        self.connection = reader(path)
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="pigeon-store-reader", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the thread; fetches not answered yet never will be (the store closes)."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join()
            self._thread = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def fetch(
        self, vhost: str, queue: str, seqs: list[int], done: Callable[[Found], object]
    ) -> None:
        """:meth:`read_messages` off the loop: ``done(found)`` runs on the loop later, or
        now when every one of them is still in a batch (nothing to read)."""
        found = self._unwritten(vhost, queue, seqs)
        wanted = [seq for seq in seqs if seq not in found] if found else seqs
        if not wanted or self._thread is None:
            done([(seq, found[seq]) for seq in seqs if seq in found])
            return

        def work(conn: sqlite3.Connection, message_rows: rows.MessageRows) -> Found:
            try:
                _read_rows(conn, message_rows.message, vhost, queue, wanted, found)
            except sqlite3.Error as error:  # the result leaves them out: gone
                log.warning("reading messages of queue %r failed: %s", queue, error)
            return [(seq, found[seq]) for seq in seqs if seq in found]

        self._inbox.put((work, done))

    def submit(
        self,
        work: Callable[[sqlite3.Connection, rows.MessageRows], Any],
        done: Callable[[Any], object],
    ) -> None:
        """Run ``work`` on the reading thread; ``done(its result)`` on the loop."""
        self._inbox.put((work, done))

    def _run(self, path: Path) -> None:
        conn = reader(path)
        message_rows = rows.MessageRows(self._bodies)
        try:
            while (job := self._inbox.get()) is not None:
                work, done = job
                result = work(conn, message_rows)
                assert self._loop is not None
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    self._loop.call_soon_threadsafe(done, result)
        finally:
            conn.close()

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        """Messages of one queue by sequence number, in the order asked (paging back in).

        Ones not committed yet are answered from the batches in memory; ones the
        database lacks (dropped as damaged) are left out.
        """
        found = self._unwritten(vhost, queue, seqs)
        wanted = [seq for seq in seqs if seq not in found] if found else seqs
        if wanted and self.connection is not None:
            _read_rows(self.connection, self._rows.message, vhost, queue, wanted, found)
        return [(seq, found[seq]) for seq in seqs if seq in found]

    def _unwritten(self, vhost: str, queue: str, seqs: list[int]) -> dict[int, Message]:
        """Those of ``seqs`` whose add is still in a batch (SQLite's readers see only
        committed transactions)."""
        found: dict[int, Message] = {}
        batches = [batch for batch in self._batches() if batch.adds]
        for seq in seqs if batches else ():
            key = (vhost, queue, seq)
            for batch in batches:
                message = batch.message(key)
                if message is not None:
                    found[seq] = message
                    break
        return found

    def read_body(self, vhost: str, queue: str, seq: int) -> bytes:
        """A stored message's body, read from disk (KeyError if there is none).

        Synchronous (a point query on the primary key); for paging bodies of
        a long backlog back in. Writes not yet committed are answered from
        memory, as SQLite's readers see only committed transactions.
        """
        key = (vhost, queue, seq)
        for batch in self._batches():
            message = batch.message(key)
            if message is not None:
                return message.body
        if self.connection is None:
            raise KeyError(key)
        row = self.connection.execute(
            "SELECT header, flags, body, crc FROM messages WHERE vhost = ? AND queue = ? AND"
            " seq = ?",
            key,
        ).fetchone()
        if row is None:
            raise KeyError(key)
        return self._rows.message(vhost, queue, seq, *row).body


def _read_rows(
    conn: sqlite3.Connection,
    decode: Callable[..., Message],
    vhost: str,
    queue: str,
    wanted: list[int],
    found: dict[int, Message],
) -> None:
    """Read ``wanted`` of one queue into ``found``; damaged rows are left out."""
    low, high = min(wanted), max(wanted)
    keep: set[int] | None = None
    queries: list[tuple[str, tuple[Any, ...]]]
    if high - low < 2 * len(wanted):
        # Dense (a stretch of one queue's backlog, as paging asks): one scan of
        # the primary key, in its order, instead of one probe per message. Rows
        # of the range not asked for (at most as many as asked) are skipped.
        keep = set(wanted)
        queries = [(_READ_RANGE, (vhost, queue, low, high))]
    else:
        queries = [
            (_read_some(len(chunk)), (vhost, queue, *chunk))
            for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500))
        ]  # 500: below SQLite's bound-parameter limit
    for sql, params in queries:
        for seq, header, flags, body, crc in conn.execute(sql, params):
            if keep is not None and seq not in keep:
                continue
            try:
                found[seq] = decode(vhost, queue, seq, header, flags, body, crc)
            except (ValueError, sqlite3.DatabaseError) as error:
                log.warning("dropped damaged message %d of queue %r: %s", seq, queue, error)


_READ_RANGE = (
    "SELECT seq, header, flags, body, crc FROM messages WHERE vhost = ? AND queue = ?"
    " AND seq BETWEEN ? AND ?"
)


@functools.cache
def _read_some(count: int) -> str:
    marks = ",".join("?" * count)
    return (
        "SELECT seq, header, flags, body, crc FROM messages WHERE vhost = ? AND queue = ?"
        f" AND seq IN ({marks})"
    )
