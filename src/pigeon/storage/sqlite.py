"""The SQLite store: durable definitions and persistent messages in ``--data-dir``.

Every method of :class:`core.ports.Store` runs on the event loop thread and
only appends to the *pending batch* (no I/O, no lock). The pending batch is
handed to the writer thread (:mod:`pigeon.storage.writer`) at the end of the
loop turn, or, while the writer is busy, as soon as it finishes: operations
issued during a commit make the next commit. :meth:`SQLiteStore.sync` adds its
callback to the pending batch (or to the one being written when nothing is
pending); the callbacks run on the loop once their batch has committed, and
never if it could not be.

A message added and removed before its batch left the loop (publish then a
quick ack) costs nothing on disk: the remove cancels the add in place.

Layout of the folder: ``pigeon.db`` (+ ``-wal``, ``-shm`` while open),
``pigeon.lock`` (held while a store has the folder open, so two brokers can
never share it), and ``*.damaged-<time>`` files kept after a recovery.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pigeon.core.message import Message
from pigeon.core.ports import BindingRecord, ExchangeRecord, MessageIndex, QueueRecord, Snapshot
from pigeon.storage import rows
from pigeon.storage.applying import AppliesCommands
from pigeon.storage.bodies import BodyCodec
from pigeon.storage.crypto import WrongKey
from pigeon.storage.database import DB_NAME, NewerFormat, open_checked
from pigeon.storage.folder import make_durable, sync_folder
from pigeon.storage.pages import PageFile
from pigeon.storage.reading import MessageReader
from pigeon.storage.recovery import read_index, read_snapshot
from pigeon.storage.writer import Batch, Op, Writer

log = logging.getLogger("pigeon.storage")

__all__ = ["NewerFormat", "SQLiteStore", "StoreLocked", "WrongKey"]


class StoreLocked(RuntimeError):
    """Another process has this data folder open."""


class SQLiteStore(AppliesCommands):
    """A :class:`core.ports.Store` in one SQLite database (WAL mode) with group commit."""

    def __init__(
        self,
        path: Path,
        *,
        loop: asyncio.AbstractEventLoop,
        fsync: bool = True,
        compress_threshold: int | None = None,
        encryption_key: bytes | None = None,
        retry_interval: float = 1.0,
        on_failing: Callable[[bool], object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.commits = 0  # transactions committed; for tests and metrics
        self._loop = loop
        self._fsync = fsync
        self._bodies = BodyCodec(
            compress_threshold=compress_threshold, encryption_key=encryption_key
        )
        self._retry_interval = retry_interval
        self._on_failing = on_failing
        self._pending = Batch()
        self._in_flight: deque[Batch] = deque()  # at most one, except during close
        self._hand_over_scheduled = False
        # Positions in the stream of writes: ``_written`` counts every write queued,
        # ``_durable`` is the position up to which all of them have committed. Both
        # only grow, so "on disk" is a comparison no other caller can undo.
        self._written = 0
        self._durable = 0
        self._failing = False
        self._lock_file: IO[bytes] | None = None
        self._writer: Writer | None = None
        # Reads (paging back in), on the loop thread: the batches not committed yet first.
        self._reader = MessageReader(self._bodies, lambda: (self._pending, *self._in_flight))
        self._pages: PageFile | None = None
        self._closed = False
        self._last_seqs: dict[tuple[str, str], int] = {}  # see fetch_index

    # -- state ----------------------------------------------------------------------

    @property
    def written(self) -> int:
        return self._written

    @property
    def durable(self) -> int:
        return self._durable

    @property
    def queued_writes(self) -> int:
        """Writes not on disk yet (queued or being written)."""
        return len(self._pending.ops) + sum(len(batch.ops) for batch in self._in_flight)

    @property
    def pager(self) -> PageFile | None:
        """``pages.db`` beside the database: transient messages of paged backlogs."""
        return self._pages

    @property
    def commit_latency(self) -> float:
        """Seconds the last batch took to commit: written and fsynced (0: none yet)."""
        return self._writer.commit_seconds if self._writer is not None else 0.0

    @property
    def failing(self) -> bool:
        """True while writes fail (disk full): nothing new is confirmed; raise an alarm."""
        return self._failing

    # -- loading --------------------------------------------------------------------

    def load(self, *, messages: bool = True, index: bool = True) -> Snapshot:
        """Open the folder (recovering it if damaged), read it all, start the writer.

        Raises :class:`StoreLocked` when another process holds the folder and
        :class:`WrongKey` when the encryption key does not fit; damaged data
        never raises (it is logged and set aside).
        """
        if self._writer is not None or self._closed:
            raise RuntimeError("load() is called once, on a store not closed")
        # The folder's own name must reach the disk too (synced into its parent), or a
        # power cut could take the whole folder, and every confirmed message with it.
        make_durable(self.path, fsync=self._fsync)
        self._lock_folder()
        if not self._fsync:
            log.warning(
                "UNSAFE: fsync is off (--unsafe-no-fsync): a crash or power cut can lose "
                "messages whose publish was confirmed. Use only for throwaway brokers."
            )
        conn: sqlite3.Connection | None = None
        try:
            conn = open_checked(self.path, fsync=self._fsync)
            if self._fsync:
                # pigeon.db's name, and any file recovery renamed aside: SQLite syncs
                # the folder when it creates its WAL, not when it creates the database.
                sync_folder(self.path)
            self._check_key(conn)
            snapshot = read_snapshot(conn, self._bodies, messages=messages, index=index)
            self._last_seqs = snapshot.last_seqs
        except BaseException:
            if conn is not None:
                conn.close()
            self._unlock_folder()
            raise
        self._reader.open(self.path / DB_NAME, self._loop)
        self._pages = PageFile(self.path, self._bodies, self._loop)
        self._writer = Writer(
            conn,
            self._bodies,
            done=self._done_threadsafe,
            failing=self._failing_threadsafe,
            retry_interval=self._retry_interval,
        )
        self._writer.start()
        if self._pending.ops:
            self._schedule_hand_over()
        return snapshot

    def _lock_folder(self) -> None:
        lock = (self.path / "pigeon.lock").open("ab")
        try:
            # flock is released by the kernel when the process dies, so a
            # SIGKILLed broker never leaves a stale lock behind.
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreLocked(f"data folder {self.path} is in use by another process") from None
        self._lock_file = lock

    def _unlock_folder(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file releases the flock
            self._lock_file = None

    def _check_key(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        cipher = self._bodies.cipher
        if row is not None and cipher is None:
            raise WrongKey("this data folder is encrypted: an encryption key is needed")
        if cipher is None:
            return
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (cipher.key_check(),))
        else:
            cipher.verify(row[0])

    # -- writes (loop thread; no I/O) ------------------------------------------------

    def _queue(self, op: Op) -> None:
        if self._closed:
            raise RuntimeError("store is closed")
        self._pending.ops.append(op)
        self._written += 1
        if self._writer is not None and not self._in_flight:
            self._schedule_hand_over()

    def save_vhost(self, name: str) -> None:
        self._queue(("save_vhost", name))

    def delete_vhost(self, name: str) -> None:
        self._queue(("delete_vhost", name))

    def save_exchange(self, record: ExchangeRecord) -> None:
        self._queue(("save_exchange", record))

    def delete_exchange(self, vhost: str, name: str) -> None:
        self._queue(("delete_exchange", vhost, name))

    def save_queue(self, record: QueueRecord) -> None:
        self._queue(("save_queue", record))

    def delete_queue(self, vhost: str, name: str) -> None:
        self._queue(("delete_queue", vhost, name))

    def save_binding(self, record: BindingRecord) -> None:
        self._queue(("save_binding", record))

    def delete_binding(self, record: BindingRecord) -> None:
        self._queue(("delete_binding", record))

    def add_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        self._pending.adds[(vhost, queue, seq)] = len(self._pending.ops)
        self._queue(("add", vhost, queue, seq, message))

    def rewrite_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        index = self._pending.adds.get((vhost, queue, seq))
        if index is not None:
            # Its add has not left the loop yet: write this copy instead, at its place.
            self._pending.ops[index] = ("add", vhost, queue, seq, message)
            return
        # An upsert, not noted in ``adds``: the row is on disk, so a later remove must
        # be written (it follows this add in its run; a run writes adds first).
        self._queue(("add", vhost, queue, seq, message))

    def remove_message(self, vhost: str, queue: str, seq: int) -> None:
        index = self._pending.adds.pop((vhost, queue, seq), None)
        if index is not None:
            # Its add has not left the loop yet: cancel it, write nothing.
            # Safe because a queue never reuses a number while rows of it may exist
            # (numbering starts over only in a queue declared again, after the
            # delete_queue of the old one), so no older row of that key can be on
            # disk for the remove to delete.
            self._pending.ops[index] = None
            self._written += 1
            return
        self._queue(("remove", vhost, queue, seq))

    def purge(self, vhost: str, queue: str) -> None:
        self._queue(("purge", vhost, queue))

    def save_document(self, kind: str, key: str, value: Any) -> None:
        self._queue_document(("save_document", kind, key, value))

    def delete_document(self, kind: str, key: str) -> None:
        self._queue_document(("delete_document", kind, key))

    def _queue_document(self, op: Op, *, retained: bool = False) -> None:
        # A document saved many times in one batch (users during a definitions import)
        # is written once, as it was last: the earlier writes are cancelled in place.
        # So is a retained message (a sensor retaining its reading many times a second).
        pending = self._pending
        latest = pending.retained if retained else pending.documents
        index = len(pending.ops)
        self._queue(op)
        earlier = latest.get((op[1], op[2]))
        if earlier is not None:
            pending.ops[earlier] = None
        latest[(op[1], op[2])] = index

    def retain_message(
        self, vhost: str, topic: str, message: Message, expires: float | None
    ) -> None:
        self._queue_document(("retain", vhost, topic, message, expires), retained=True)

    def forget_retained(self, vhost: str, topic: str) -> None:
        self._queue_document(("forget_retained", vhost, topic), retained=True)

    def sync(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop once everything written before is on disk."""
        if self._pending.ops:
            self._pending.callbacks.append(callback)
        elif self._in_flight:
            self._in_flight[-1].callbacks.append(callback)
        else:
            self._loop.call_soon(callback)

    # -- hand-over between the loop and the writer -----------------------------------

    def _schedule_hand_over(self) -> None:
        # End of this loop turn, so that all the writes of the turn go together.
        if not self._hand_over_scheduled:
            self._hand_over_scheduled = True
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        self._hand_over_scheduled = False
        if self._in_flight or not self._pending.ops or self._writer is None:
            return
        batch, self._pending = self._pending, Batch()
        batch.position = self._written
        self._in_flight.append(batch)
        self._writer.submit(batch)

    def _done_threadsafe(self, batch: Batch, committed: bool) -> None:
        # RuntimeError: the loop is closed, nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._done, batch, committed)

    def _failing_threadsafe(self, failing: bool) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._set_failing, failing)

    def _done(self, batch: Batch, committed: bool) -> None:
        finished = self._in_flight.popleft()
        assert finished is batch, "batches commit in order"
        if committed:
            self.commits += 1
            self._durable = batch.position
            for callback in batch.callbacks:
                callback()
        if not self._closed:
            self._hand_over()

    def _set_failing(self, failing: bool) -> None:
        self._failing = failing
        if self._on_failing is not None:
            self._on_failing(failing)

    # -- reads and shutdown ----------------------------------------------------------

    keeps_messages = True

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        """Messages of one queue by sequence number, in the order asked (paging back in).
        Ones the database lacks (dropped as damaged) are left out."""
        return self._reader.read_messages(vhost, queue, seqs)

    def fetch_messages(
        self,
        vhost: str,
        queue: str,
        seqs: list[int],
        done: Callable[[list[tuple[int, Message]]], object],
    ) -> None:
        """:meth:`read_messages` on the reader thread; ``done`` runs on the loop."""
        self._reader.fetch(vhost, queue, seqs, done)

    def fetch_index(self, done: Callable[[MessageIndex], object]) -> None:
        """The stored numbers and sizes of every queue, read on the reader thread; rows
        found damaged are deleted by the writer (the reader cannot write)."""
        last = self._last_seqs

        def work(
            conn: sqlite3.Connection, checker: rows.MessageRows
        ) -> tuple[MessageIndex, list[int]]:
            found, bad = read_index(conn, checker)
            # Stored since the start: not recovered, the queue has them in memory.
            for key, (seqs, sizes) in found.items():
                top = last.get(key, 0)
                if seqs and seqs[-1] > top:
                    keep = bisect.bisect_right(seqs, top)
                    del seqs[keep:]
                    del sizes[keep:]
            return found, bad

        def read(result: tuple[MessageIndex, list[int]]) -> None:
            found, bad = result
            if bad:
                self._queue(("drop_rows", "messages", bad))
            done(found)

        self._reader.submit(work, read)

    def read_body(self, vhost: str, queue: str, seq: int) -> bytes:
        """A stored message's body (KeyError if there is none); a point query."""
        return self._reader.read_body(vhost, queue, seq)

    def close(self) -> None:
        """Write everything queued, stop the writer, close the files."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            if self._pending.ops or self._pending.callbacks:
                batch, self._pending = self._pending, Batch()
                self._in_flight.append(batch)
                self._writer.submit(batch)
            self._writer.stop()
        self._reader.close()
        if self._pages is not None:
            self._pages.close()
        self._unlock_folder()
