"""The one thread that writes: each batch of operations becomes one transaction.

The loop thread hands a batch over only when the previous one is committed,
so while a commit (and its fsync) runs, new operations pile up on the loop
side and make the next batch: the slower the disk, the bigger the groups.
One fsync per batch, never per message.

A batch that fails to commit (disk full, I/O error) is rolled back and
retried, every ``retry_interval`` seconds, until it commits: nothing of it is
confirmed meanwhile, and the store reports itself failing. Replaying a batch
from the start is correct because its transaction was rolled back as a whole
and every operation is an upsert or a delete.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pigeon.core.message import Message
from pigeon.core.ports import BindingRecord, ExchangeRecord, QueueRecord
from pigeon.storage import bulk, database, rows
from pigeon.storage.bodies import BodyCodec

log = logging.getLogger("pigeon.storage")

# An operation: its name, then its arguments (see Writer._apply_one).
Op = tuple[Any, ...]


@dataclass(eq=False)
class Batch:
    ops: list[Op | None] = field(default_factory=list)  # None: cancelled (add then remove)
    callbacks: list[Callable[[], object]] = field(default_factory=list)
    # (vhost, queue, seq) -> index in ops of its add, for cancelling and read_body.
    adds: dict[tuple[str, str, int], int] = field(default_factory=dict)
    # (kind, key) -> index in ops of the last save/delete of that document: an earlier
    # one in the same batch is cancelled (the last one wins anyway).
    documents: dict[tuple[str, str], int] = field(default_factory=dict)
    # (vhost, topic) -> index in ops of the last retain/forget of that retained message,
    # cancelled as documents are.
    retained: dict[tuple[str, str], int] = field(default_factory=dict)
    # The store's write position at the end of this batch: once it commits, every
    # write up to here is on disk.
    position: int = 0

    def message(self, key: tuple[str, str, int]) -> Message | None:
        index = self.adds.get(key)
        op = self.ops[index] if index is not None else None
        return op[4] if op is not None else None


class Writer:
    """Applies batches on its own thread; reports through the two callables.

    ``done(batch, committed)`` and ``failing(flag)`` are called on the writer
    thread; the store turns them into loop callbacks.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        bodies: BodyCodec,
        *,
        done: Callable[[Batch, bool], None],
        failing: Callable[[bool], None],
        retry_interval: float,
    ) -> None:
        self._conn = conn
        self._bodies = bodies
        self._rows = rows.MessageRows(bodies)
        self._done = done
        self._failing = failing
        self._retry_interval = retry_interval
        self._inbox: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pigeon-store-writer", daemon=True)
        # Seconds the last committed batch took to write and fsync (a float written by
        # this thread, read by the loop's: one reference, no lock needed).
        self.commit_seconds = 0.0

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue a batch; never blocks (SimpleQueue.put takes no bounded lock)."""
        self._inbox.put(batch)

    def stop(self) -> None:
        """Write what was submitted (one last try if failing), then end the thread."""
        self._inbox.put(None)
        self._closing.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = self._inbox.get()
            if batch is None:
                break
            self._done(batch, self._commit(batch))
            # Drop our reference now, not when the next batch arrives: the
            # store keeps no body in memory once it is written.
            del batch
        try:
            database.mark_clean(self._conn)
            # Move the WAL into the database and empty it: a clean folder.
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("final checkpoint failed: %s", exc)
        self._conn.close()

    def _commit(self, batch: Batch) -> bool:
        failing = False
        while True:
            started = time.perf_counter()
            try:
                self._transaction(batch.ops)
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                if not failing:
                    failing = True
                    log.warning("store write failed, retrying until it succeeds: %s", exc)
                    self._failing(True)
                if self._closing.is_set():
                    log.warning(
                        "store closed while failing: %d writes were lost (never confirmed)",
                        sum(op is not None for op in batch.ops),
                    )
                    return False
                self._closing.wait(self._retry_interval)
                continue
            self.commit_seconds = time.perf_counter() - started
            if failing:
                log.warning("store writes succeed again")
                self._failing(False)
            return True

    def _transaction(self, ops: Sequence[Op | None]) -> None:
        conn = self._conn
        # IMMEDIATE: take the write lock up front; the writer is the only
        # writer, so this never waits, and no statement can fail half-way
        # for a lock upgrade.
        conn.execute("BEGIN IMMEDIATE")
        freed = False
        # Message adds and removes, the bulk of every batch, go to SQLite in runs,
        # one executemany each. Within a run their order does not matter: a queue
        # reuses no number within a run (only a queue declared again starts over, and
        # the delete_queue before it ends the run), and an add removed before its
        # batch left the loop was
        # cancelled (None), so no run holds both the add and the remove of a key.
        adds: list[tuple[Any, ...]] = []
        removes: list[tuple[Any, ...]] = []
        for op in ops:
            if op is None:
                continue
            name = op[0]
            if name == "add":
                self._add_row(op, adds)
            elif name == "remove":
                removes.append(op[1:])
            else:
                self._flush(adds, removes)
                freed |= self._apply_one(op)
        self._flush(adds, removes)
        conn.execute("COMMIT")  # with synchronous=FULL, the WAL is fsynced here
        if freed:
            # Give the pages of purged/deleted messages back to the file
            # system (auto_vacuum=INCREMENTAL); its own small transaction.
            conn.execute("PRAGMA incremental_vacuum")

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback failed: %s", exc)

    def _add_row(self, op: Op, adds: list[tuple[Any, ...]]) -> None:
        try:
            adds.append(self._rows.row(op[1], op[2], op[3], op[4]))
        except (TypeError, ValueError) as exc:
            # A value the codec cannot store is a bug upstream: say so loudly and
            # keep the rest of the batch (as _apply_one does).
            log.error("cannot store add %r: %s", op[1:4], exc)

    def _flush(self, adds: list[tuple[Any, ...]], removes: list[tuple[Any, ...]]) -> None:
        """Write the pending run of adds and removes, in few statements; empties both."""
        runs = ((bulk.insert, adds, _ADD[0]), (bulk.delete, removes, _REMOVE[0]))
        for write, params, sql in runs:
            if not params:
                continue
            try:
                write(self._conn, params)
            except (TypeError, ValueError):
                # A row sqlite3 cannot bind (text with lone surrogates): redo the run
                # row by row, so that only that row is refused (every statement is an
                # upsert or a delete, so the rows already written can be written again).
                for row in params:
                    try:
                        self._conn.execute(sql, row)
                    except (TypeError, ValueError) as exc:
                        log.error("cannot store message row %r: %s", row[:3], exc)
            params.clear()

    def _apply_one(self, op: Op) -> bool:
        """Run one operation; True when it may have freed many pages."""
        name = op[0]
        if name == "drop_rows":  # damaged rows a read found: ("drop_rows", table, rowids)
            self._conn.executemany(f"DELETE FROM {op[1]} WHERE rowid = ?", ((r,) for r in op[2]))
            return True
        try:
            sql, params = self._statement(op)
            for statement in sql:
                self._conn.execute(statement, params)
        except (TypeError, ValueError) as exc:
            # A value that cannot be stored (by the codec, or by sqlite3: a
            # str with lone surrogates) is a bug upstream: say so loudly and
            # keep the rest of the batch. sqlite3.Error is not caught here.
            log.error("cannot store %s %r: %s", name, op[1:4], exc)
            return False
        return name in ("purge", "delete_queue", "delete_vhost")

    def _statement(self, op: Op) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        match op:
            case ("add", vhost, queue, seq, message):
                return _ADD, self._rows.row(vhost, queue, seq, message)
            case ("remove", vhost, queue, seq):
                return _REMOVE, (vhost, queue, seq)
            case ("purge", vhost, queue):
                return _PURGE, (vhost, queue)
            case ("save_exchange", ExchangeRecord() as record):
                return _SAVE_EXCHANGE, rows.exchange_row(record)
            case ("save_queue", QueueRecord() as record):
                return _SAVE_QUEUE, rows.queue_row(record)
            case ("save_binding", BindingRecord() as record):
                return _SAVE_BINDING, rows.with_crc(*rows.binding_key(record))
            case ("delete_binding", BindingRecord() as record):
                return _DELETE_BINDING, rows.binding_key(record)
            case ("save_document", kind, key, value):
                return _SAVE_DOCUMENT, rows.document_row(kind, key, value)
            case ("save_vhost", name):
                return _SAVE_VHOST, rows.with_crc(name)
            case ("retain", vhost, topic, message, expires):
                return _RETAIN, rows.retained_row(vhost, topic, message, expires, self._bodies)

            case (name, *keys) if name in _DELETES:
                return _DELETES[name], tuple(keys)
        raise ValueError(f"unknown store operation {op[0]!r}")


_ADD = (
    "INSERT OR REPLACE INTO messages (vhost, queue, seq, header, flags, body, crc)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
)
_REMOVE = ("DELETE FROM messages WHERE vhost = ? AND queue = ? AND seq = ?",)
_PURGE = ("DELETE FROM messages WHERE vhost = ?1 AND queue = ?2",)
_SAVE_EXCHANGE = ("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?)",)
_SAVE_QUEUE = ("INSERT OR REPLACE INTO queues VALUES (?, ?, ?, ?)",)
_SAVE_BINDING = ("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?, ?)",)
_DELETE_BINDING = (
    "DELETE FROM bindings WHERE vhost = ? AND source = ? AND destination = ? AND kind = ?"
    " AND routing_key = ? AND arguments = ?",
)
_SAVE_DOCUMENT = ("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)",)
_SAVE_VHOST = ("INSERT OR REPLACE INTO vhosts VALUES (?, ?)",)
_RETAIN = ("INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?, ?)",)
# Numbered parameters (?1, ?2) let one parameter tuple serve every statement.
_DELETES: dict[str, tuple[str, ...]] = {
    "delete_queue": (
        "DELETE FROM queues WHERE vhost = ?1 AND name = ?2",
        "DELETE FROM bindings WHERE vhost = ?1 AND destination = ?2 AND kind = 'queue'",
        "DELETE FROM messages WHERE vhost = ?1 AND queue = ?2",
    ),
    "delete_exchange": (
        "DELETE FROM exchanges WHERE vhost = ?1 AND name = ?2",
        "DELETE FROM bindings WHERE vhost = ?1 AND (source = ?2"
        " OR (destination = ?2 AND kind = 'exchange'))",
    ),
    "delete_vhost": (
        *(
            f"DELETE FROM {table} WHERE vhost = ?1"
            for table in ("messages", "bindings", "queues", "exchanges", "retained")
        ),
        "DELETE FROM vhosts WHERE name = ?1",
    ),
    "delete_document": ("DELETE FROM documents WHERE kind = ?1 AND key = ?2",),
    "forget_retained": ("DELETE FROM retained WHERE vhost = ?1 AND topic = ?2",),
}
