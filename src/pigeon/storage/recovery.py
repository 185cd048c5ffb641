"""Reading a data folder's database back at start (a snapshot of what it keeps)."""

from __future__ import annotations

import itertools
import logging
import sqlite3
from array import array
from collections.abc import Callable
from typing import Any

from pigeon.core.message import Message
from pigeon.core.ports import Snapshot, StoredMessage
from pigeon.storage import rows
from pigeon.storage.bodies import BodyCodec
from pigeon.storage.codec import CodecError, decode_value
from pigeon.storage.database import TABLES, readable_rows

log = logging.getLogger("pigeon.storage")


def read_snapshot(
    conn: sqlite3.Connection, bodies: BodyCodec, *, messages: bool = True
) -> Snapshot:
    """Every valid row of the database; damaged ones are logged and deleted. Without
    ``messages``, only their sequence numbers and sizes (``Snapshot.message_seqs``)."""
    snapshot = Snapshot()
    snapshot.vhosts = [name for (name,) in _valid_rows(conn, "vhosts", lambda n: (n,))]
    snapshot.exchanges = list(_valid_rows(conn, "exchanges", rows.exchange_record))
    snapshot.queues = list(_valid_rows(conn, "queues", rows.queue_record))
    snapshot.bindings = list(_valid_rows(conn, "bindings", rows.binding_record))
    for kind, key, value in _valid_rows(conn, "documents", _document):
        snapshot.documents.setdefault(kind, {})[key] = value
    if not messages:
        _read_index(conn, snapshot, rows.MessageRows(bodies))
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


def _read_index(conn: sqlite3.Connection, snapshot: Snapshot, checker: rows.MessageRows) -> None:
    """Only the (checked) sequence numbers and stored sizes of the messages, queue by
    queue: a backlog of millions is restored without holding its bodies in memory."""
    bad: list[int] = []
    seqs = snapshot.message_seqs
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
    if bad:
        conn.executemany("DELETE FROM messages WHERE rowid = ?", ((r,) for r in bad))
    for found, sizes in seqs.values():
        if any(a > b for a, b in itertools.pairwise(found)):  # salvaged out of order
            pairs = sorted(zip(found, sizes, strict=True))
            found[:] = array("q", (s for s, _ in pairs))
            sizes[:] = array("q", (n for _, n in pairs))


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
    if bad:
        conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", ((r,) for r in bad))
    return good
