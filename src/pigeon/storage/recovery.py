"""Reading a data folder's database back at start (a snapshot of what it keeps)."""

from __future__ import annotations

import itertools
import logging
import sqlite3
from array import array
from collections.abc import Callable
from typing import Any, TypeAlias

from pigeon.core.message import Message
from pigeon.core.ports import Snapshot, StoredMessage
from pigeon.storage import rows
from pigeon.storage.bodies import BodyCodec
from pigeon.storage.codec import CodecError, decode_value
from pigeon.storage.database import TABLES, readable_rows

log = logging.getLogger("pigeon.storage")

# (vhost, queue) -> (seqs ascending, stored body sizes)
Index: TypeAlias = "dict[tuple[str, str], tuple[array[int], array[int]]]"


def read_snapshot(
    conn: sqlite3.Connection, bodies: BodyCodec, *, messages: bool = True, index: bool = True
) -> Snapshot:
    """Every valid row of the database; damaged ones are logged and deleted. Without
    ``messages``, only their sequence numbers and sizes (``Snapshot.message_seqs``);
    without ``index`` either, only each queue's highest number (``last_seqs``)."""
    snapshot = Snapshot()
    snapshot.vhosts = [name for (name,) in _valid_rows(conn, "vhosts", lambda n: (n,))]
    snapshot.exchanges = list(_valid_rows(conn, "exchanges", rows.exchange_record))
    snapshot.queues = list(_valid_rows(conn, "queues", rows.queue_record))
    snapshot.bindings = list(_valid_rows(conn, "bindings", rows.binding_record))
    for kind, key, value in _valid_rows(conn, "documents", _document):
        snapshot.documents.setdefault(kind, {})[key] = value

    def retained(
        vhost: str, topic: str, expires: int, header: bytes, flags: int, body: bytes
    ) -> Any:
        return rows.retained_record(vhost, topic, expires, header, flags, body, bodies)

    snapshot.retained = list(_valid_rows(conn, "retained", retained))
    if not messages:
        if index:
            snapshot.message_seqs, bad = read_index(conn, rows.MessageRows(bodies))
            drop_rows(conn, "messages", bad)
        else:
            snapshot.last_seqs = last_seqs(conn)
        return snapshot

    def message(
        vhost: str, queue: str, seq: int, header: bytes, flags: int, body: bytes
    ) -> tuple[str, str, int, Message]:
        msg = rows.message_of(vhost, queue, seq, header, flags, body, bodies)
        return vhost, queue, seq, msg

    for vhost, queue, seq, msg in _valid_rows(conn, "messages", message):
        snapshot.messages.setdefault((vhost, queue), []).append(StoredMessage(seq, msg))
    for stored in snapshot.messages.values():
        # Rows come in rowid (insertion) order, already ascending per
        # queue but for salvaged databases; sorting a sorted list is O(n).
        stored.sort(key=lambda m: m.seq)
    known = {(q.vhost, q.name) for q in snapshot.queues}
    for vhost, queue in snapshot.messages.keys() - known:
        log.warning("messages of queue %r in vhost %r have no queue record", queue, vhost)
    return snapshot


def _document(kind: str, key: str, data: bytes) -> tuple[str, str, Any]:
    return kind, key, decode_value(data)


def last_seqs(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Each queue's highest stored number (from the primary key: no row is read)."""
    # (A damaged row's number may not be an integer: read_index drops such rows later.)
    query = (
        "SELECT vhost, queue, MAX(seq) FROM messages WHERE typeof(seq) = 'integer'"
        " GROUP BY vhost, queue"
    )
    return {(vhost, queue): last for vhost, queue, last in conn.execute(query)}


def drop_rows(conn: sqlite3.Connection, table: str, rowids: list[int]) -> None:
    if rowids:
        conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", ((r,) for r in rowids))


def read_index(conn: sqlite3.Connection, checker: rows.MessageRows) -> tuple[Index, list[int]]:
    """Only the (checked) sequence numbers and stored sizes of the messages, queue by
    queue: a backlog of millions is restored without holding its bodies in memory.
    Also the rowids of damaged rows (logged), for the caller to delete."""
    bad: list[int] = []
    seqs: Index = {}
    for rowid, *columns in readable_rows(conn, "messages", TABLES["messages"]):
        try:
            vhost, queue, seq, header, flags, body, crc = columns
            if checker.crc(vhost, queue, seq, header, flags, body) != crc:
                raise CodecError("checksum mismatch")
        except (CodecError, TypeError, ValueError) as exc:
            log.warning("dropped damaged row %d of table messages: %s", rowid, exc)
            bad.append(rowid)
            continue
        index = seqs.get((vhost, queue))
        if index is None:
            index = seqs[(vhost, queue)] = (array("q"), array("q"))
        index[0].append(seq)
        index[1].append(len(body))
    for found, sizes in seqs.values():
        if any(a > b for a, b in itertools.pairwise(found)):  # salvaged out of order
            pairs = sorted(zip(found, sizes, strict=True))
            found[:] = array("q", (s for s, _ in pairs))
            sizes[:] = array("q", (n for _, n in pairs))
    return seqs, bad


def _valid_rows(conn: sqlite3.Connection, table: str, build: Callable[..., Any]) -> list[Any]:
    """The decoded rows of ``table``; damaged ones are logged and deleted."""
    good: list[Any] = []
    bad: list[int] = []
    for rowid, *columns in readable_rows(conn, table, TABLES[table]):
        try:
            good.append(build(*rows.checked(tuple(columns))))
        except (CodecError, TypeError, ValueError) as exc:
            log.warning("dropped damaged row %d of table %s: %s", rowid, table, exc)
            bad.append(rowid)
    drop_rows(conn, table, bad)
    return good
