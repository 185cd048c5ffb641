"""Many message rows in few SQL statements: the writer's adds and removes.

Python's sqlite3 releases the interpreter lock around every step of a
statement, so ``executemany`` over N rows hands the lock back and forth with
the event loop N times; when the loop is busy, each of those hand-overs can
wait for the loop's switch interval. Measured on a 2-core machine with a busy
second thread: 447 µs per message with one statement per row, 62 µs with the
rows grouped as here. So rows are inserted many per ``INSERT ... VALUES``, and
removes of one queue become ``seq BETWEEN`` ranges (consecutive seqs: one
acked stretch) or ``seq IN (...)`` lists.

Statement shapes are few (chunks of 64, 32, ... 1 rows), so SQLite's prepared
statement cache keeps them all.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

# Rows per statement: 64 rows x 7 columns stays far below SQLite's bound-parameter
# limit (32,766 since 3.32; 999 before).
CHUNK = 64
_COLUMNS = "(vhost, queue, seq, header, flags, body, crc)"

Row = tuple[Any, ...]


def insert(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """``INSERT OR REPLACE`` every row (the seven message columns, in table order)."""
    for start, size in _chunks(len(rows)):
        values = list(itertools.chain.from_iterable(rows[start : start + size]))
        conn.execute(_insert_sql(size), values)


def delete(conn: sqlite3.Connection, keys: Sequence[tuple[str, str, int]]) -> None:
    """Delete the rows of these (vhost, queue, seq) keys."""
    by_queue: dict[tuple[str, str], list[int]] = {}
    for vhost, queue, seq in keys:
        by_queue.setdefault((vhost, queue), []).append(seq)
    for (vhost, queue), seqs in by_queue.items():
        seqs.sort()
        singles: list[int] = []
        ranges: list[tuple[str, str, int, int]] = []
        for first, last in _runs(seqs):
            if first == last:
                singles.append(first)
            else:
                ranges.append((vhost, queue, first, last))
        if ranges:
            conn.executemany(_DELETE_RANGE, ranges)
        for start, size in _chunks(len(singles)):
            conn.execute(_delete_sql(size), (vhost, queue, *singles[start : start + size]))


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct integers as (first, last) runs of consecutive values."""
    runs: list[tuple[int, int]] = []
    first = last = seqs[0]
    for seq in itertools.islice(seqs, 1, None):
        if seq != last + 1:
            runs.append((first, last))
            first = seq
        last = seq
    runs.append((first, last))
    return runs


def _chunks(count: int) -> list[tuple[int, int]]:
    """(start, size) pieces of ``count`` items: CHUNK-sized, then powers of two."""
    pieces = [(start, CHUNK) for start in range(0, count - count % CHUNK, CHUNK)]
    start = count - count % CHUNK
    size = CHUNK
    while start < count:
        size //= 2
        if count - start >= size:
            pieces.append((start, size))
            start += size
    return pieces


@cache
def _insert_sql(rows: int) -> str:
    marks = ",".join(["(?,?,?,?,?,?,?)"] * rows)
    return f"INSERT OR REPLACE INTO messages {_COLUMNS} VALUES {marks}"


@cache
def _delete_sql(seqs: int) -> str:
    marks = ",".join("?" * seqs)
    return f"DELETE FROM messages WHERE vhost = ? AND queue = ? AND seq IN ({marks})"


_DELETE_RANGE = "DELETE FROM messages WHERE vhost = ? AND queue = ? AND seq BETWEEN ? AND ?"
