"""Reads of stored messages: paging a backlog back in, restoring a queue after a start.

SQLite's readers see only committed transactions, so a message whose add is still
in a batch (pending on the loop, or being written) is answered from that batch;
the others come from the database through the reader's own connection.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from pigeon.core.message import Message
from pigeon.storage import rows
from pigeon.storage.writer import Batch

log = logging.getLogger("pigeon.storage")


class MessageReader:
    """The read side of :class:`pigeon.storage.sqlite.SQLiteStore`."""

    def __init__(self, message_rows: rows.MessageRows, batches: Callable[[], Iterable[Batch]]):
        self._rows = message_rows
        self._batches = batches  # the batches not committed yet, newest first
        self.connection: sqlite3.Connection | None = None  # set once the store is open

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        """Messages of one queue by sequence number, in the order asked (paging back in).

        Ones not committed yet are answered from the batches in memory; ones the
        database lacks (dropped as damaged) are left out.
        """
        found = self._unwritten(vhost, queue, seqs)
        wanted = [seq for seq in seqs if seq not in found] if found else seqs
        if wanted and self.connection is not None:
            self._read_rows(vhost, queue, wanted, found)
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

    def _read_rows(
        self, vhost: str, queue: str, wanted: list[int], found: dict[int, Message]
    ) -> None:
        assert self.connection is not None
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
        decode = self._rows.message
        for sql, params in queries:
            for seq, header, flags, body, crc in self.connection.execute(sql, params):
                if keep is not None and seq not in keep:
                    continue
                try:
                    found[seq] = decode(vhost, queue, seq, header, flags, body, crc)
                except (ValueError, sqlite3.DatabaseError) as error:
                    log.warning("dropped damaged message %d of queue %r: %s", seq, queue, error)

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
