"""The SQLite file of a data folder: schema, pragmas, and opening it whatever state it is in.

Opening never fails because of what is in the folder. A database that
SQLite cannot open or that fails ``PRAGMA quick_check`` is moved aside
(``pigeon.db.damaged-<time>``, its WAL beside it under the name SQLite pairs
with it) and the rows that can still be read from it are copied into a fresh
database. Rows are then checked one by one (CRC32, decoding) by the store's
load. A damaged WAL is handled by SQLite itself: recovery keeps the frames up
to the first one whose checksum fails and ignores the rest; we detect when
what it ignored held committed transactions, log it, and keep a copy.

Nothing here uses memory-mapped I/O (``mmap_size`` stays 0): reading a
mapped file that was truncated behind SQLite's back raises SIGBUS, which
would kill the broker instead of giving a catchable error.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("pigeon.storage")

DB_NAME = "pigeon.db"
# The format of the data folder, stored in ``meta`` as 'schema'. A database of an
# older version is brought up to date at open by the steps in MIGRATIONS, one version
# at a time, in the transaction that records the new version; a newer one is refused.
#   1: Pigeon 0.1 (messages numbered by one counter of the whole broker).
#   2: messages numbered per queue. The key was (vhost, queue, seq) already and 0.1's
#      numbers ascend within each queue, so its rows are valid as they are.
#   3: retained messages (MQTT), table ``retained``.
SCHEMA_VERSION = 3


class NewerFormat(RuntimeError):
    """The data folder was written by a newer Pigeon, in a format this one cannot read."""


def _from_1(conn: sqlite3.Connection) -> None:
    """Nothing to rewrite (see SCHEMA_VERSION); the step records that it was checked."""


def _from_2(conn: sqlite3.Connection) -> None:
    """The ``retained`` table (connect() has made it already; said here to be explicit)."""
    conn.execute(_RETAINED)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _from_1, 2: _from_2}

# Every table is a rowid table (not WITHOUT ROWID): message rows may be large
# (SQLite advises against WITHOUT ROWID for rows over ~1/20 of a page) and
# salvage walks the table b-tree by rowid, which needs no index to be intact.
# Every row but meta's carries a CRC32 of its stored bytes (see store.row_crc).
TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "vhosts": ("name", "crc"),
    "exchanges": ("vhost", "name", "data", "crc"),
    "queues": ("vhost", "name", "data", "crc"),
    "bindings": ("vhost", "source", "destination", "kind", "routing_key", "arguments", "crc"),
    "messages": ("vhost", "queue", "seq", "header", "flags", "body", "crc"),
    "documents": ("kind", "key", "data", "crc"),
    # expires: milliseconds since the epoch, 0 for never; header and body as messages'.
    "retained": ("vhost", "topic", "expires", "header", "flags", "body", "crc"),
}
_RETAINED = """
CREATE TABLE IF NOT EXISTS retained (
    vhost TEXT NOT NULL, topic TEXT NOT NULL, expires INTEGER NOT NULL, header BLOB NOT NULL,
    flags INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (vhost, topic))"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vhosts (name TEXT PRIMARY KEY, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS exchanges (
    vhost TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS queues (
    vhost TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS bindings (
    vhost TEXT NOT NULL, source TEXT NOT NULL, destination TEXT NOT NULL, kind TEXT NOT NULL,
    routing_key TEXT NOT NULL, arguments BLOB NOT NULL, crc INTEGER NOT NULL,
    UNIQUE (vhost, source, destination, kind, routing_key, arguments));
CREATE TABLE IF NOT EXISTS messages (
    vhost TEXT NOT NULL, queue TEXT NOT NULL, seq INTEGER NOT NULL, header BLOB NOT NULL,
    flags INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (vhost, queue, seq));
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (kind, key));
"""

_WAL_HEADER = struct.Struct(">IIIIIIII")
_FRAME_HEADER = struct.Struct(">IIII")  # page, commit size, salt-1, salt-2 (checksums follow)
_WAL_MAGIC = (0x377F0682, 0x377F0683)


def connect(path: Path, *, fsync: bool) -> sqlite3.Connection:
    """A connection with Pigeon's pragmas, schema created if missing.

    ``isolation_level=None``: the store issues BEGIN/COMMIT itself, so that a
    batch is exactly one transaction and nothing commits behind its back.
    ``check_same_thread=False``: the writer connection is made on the loop
    thread and then used by the writer thread only.
    """
    conn = reader(path)
    # WAL: a commit appends to one file and fsyncs it once (no rollback
    # journal to write and sync first), and readers (read_body) do not block
    # the writer. Persistent across connections once set.
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    # FULL: in WAL mode this fsyncs the WAL at every commit, so a commit is on
    # disk when COMMIT returns; NORMAL would only sync at checkpoints and a
    # power cut could lose confirmed messages. OFF is --unsafe-no-fsync.
    conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
    # Check each b-tree cell's bounds as it is read: a damaged page raises
    # SQLITE_CORRUPT instead of returning garbage, for a few percent of CPU.
    conn.execute("PRAGMA cell_size_check=ON")
    # Keep the WAL file from staying huge after a burst: truncate it to 64 MiB
    # after a checkpoint resets it.
    conn.execute("PRAGMA journal_size_limit=67108864")
    # Incremental auto-vacuum lets the store return freed pages to the file
    # system after a purge (PRAGMA incremental_vacuum). Only takes effect on a
    # database with no tables yet, so it is set before the schema.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.executescript(_SCHEMA)
    conn.execute(_RETAINED)
    # A new database is of the current version; one that has a version keeps it until
    # migrate() brings it up to date.
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is not None and type(row[0]) is int:
        return row[0]
    if row is not None:  # damaged: read it as the current format, the likeliest
        log.warning("the data folder's format version %r is damaged", row[0])
    return SCHEMA_VERSION


def refuse_newer(conn: sqlite3.Connection) -> None:
    """Raise :class:`NewerFormat` for a database this Pigeon cannot read (before writing)."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise NewerFormat(
            f"the data folder has format {version}, written by a newer Pigeon; this one "
            f"reads formats up to {SCHEMA_VERSION}"
        )


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION, a step per version, each one transaction."""
    refuse_newer(conn)
    version = schema_version(conn)
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("data folder migrated to format %d", version)


def reader(path: Path) -> sqlite3.Connection:
    """A connection that reads damaged text as text, so that the row's CRC rejects it.

    (With the default text factory, invalid UTF-8 in a TEXT column raises
    while fetching, which would abort a whole scan instead of one row.)
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.text_factory = _text
    return conn


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def open_checked(directory: Path, *, fsync: bool) -> sqlite3.Connection:
    """The data folder's database, healthy: checked, or rebuilt from what could be read."""
    path = directory / DB_NAME
    # The -shm file is only an index of the WAL that SQLite rebuilds from the
    # WAL when it is missing. We hold the folder's lock, so no other process
    # has the database open: deleting it is safe and means a damaged index
    # can never mislead recovery.
    _sidecar(path, "-shm").unlink(missing_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    _check_orphan_wal(path, stamp)
    wal_was_damaged = _check_wal_header(path, stamp)
    wal = _sidecar(path, "-wal")
    wal_present = wal.exists() and wal.stat().st_size >= _WAL_HEADER.size
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path, fsync=fsync)
        _check_database(conn)
        refuse_newer(conn)
        if not wal_was_damaged:
            _check_wal_frames(conn, path, stamp)
        _check_clean_shutdown(conn, wal_present)
        migrate(conn)
        return conn
    except NewerFormat:
        if conn is not None:
            _close_quietly(conn)
        raise
    except sqlite3.DatabaseError as exc:
        log.warning("database %s is damaged (%s); moving it aside and salvaging", path, exc)
    if conn is not None:
        _close_quietly(conn)
    aside = _move_aside(path, stamp)
    fresh = connect(path, fsync=fsync)
    salvage(aside, fresh)
    migrate(fresh)  # the rows are in the format of the damaged file (salvage keeps it)
    return fresh


def _check_clean_shutdown(conn: sqlite3.Connection, wal_present: bool) -> None:
    """Warn when the WAL is gone although the last run did not shut down cleanly.

    While a store is open its WAL file always exists and holds at least a
    header (we never truncate it to zero but at a clean close), so its absence
    after a crash means it was lost, with whatever it held. The flag is set
    (committed) now and cleared by :func:`mark_clean` at close.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'open'").fetchone()
    if row is not None and row[0] == 1 and not wal_present:
        log.warning(
            "the WAL of %s is missing after an unclean shutdown: transactions committed "
            "since the last checkpoint are lost",
            DB_NAME,
        )
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('open', 1)")
    # Into the database file itself, so that losing the WAL does not lose the flag.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def mark_clean(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('open', 0)")


def _check_database(conn: sqlite3.Connection) -> None:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        problems = "; ".join(str(r[0]) for r in rows[:5])
        raise sqlite3.DatabaseError(f"quick_check: {problems}")
    # A file whose tables exist but hold something else is not ours to trust.
    for table, columns in TABLES.items():
        found = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            raise sqlite3.DatabaseError(f"table {table} has columns {found}")


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _check_orphan_wal(path: Path, stamp: str) -> None:
    """Keep aside a WAL whose database file is missing or empty.

    SQLite deletes the WAL of a zero-length database when it opens it (the
    WAL's frames are changes to pages the file no longer has): say so and
    keep the file, rather than let it vanish silently.
    """
    wal = _sidecar(path, "-wal")
    if not wal.exists() or wal.stat().st_size <= _WAL_HEADER.size:
        return
    if path.exists() and path.stat().st_size > 0:
        return
    kept = wal.with_name(f"{wal.name}.damaged-{stamp}")
    wal.rename(kept)
    log.warning(
        "database %s is missing or empty: its WAL (%d bytes of later transactions) cannot be "
        "applied and was moved aside as %s",
        path,
        kept.stat().st_size,
        kept.name,
    )


def _check_wal_header(path: Path, stamp: str) -> bool:
    """Keep aside a WAL whose header is damaged (SQLite then ignores the whole file)."""
    wal = _sidecar(path, "-wal")
    try:
        with wal.open("rb") as f:
            head = f.read(_WAL_HEADER.size)
    except FileNotFoundError:
        return False
    if not head or _wal_header_ok(head):
        return False
    size = wal.stat().st_size
    kept = wal.with_name(f"{wal.name}.damaged-{stamp}")
    shutil.copyfile(wal, kept)
    log.warning(
        "WAL %s has a damaged header: its %d bytes are ignored (kept as %s)",
        wal,
        size,
        kept.name,
    )
    return True


def _wal_header_ok(head: bytes) -> bool:
    """Magic and checksum of a WAL header (sqlite.org/fileformat2.html, "WAL File Format")."""
    if len(head) < _WAL_HEADER.size:
        return False
    magic, *_, check1, check2 = _WAL_HEADER.unpack(head)
    if magic not in _WAL_MAGIC:
        return False
    # The checksum's words are big-endian when the magic's low bit is set.
    words = struct.unpack((">" if magic & 1 else "<") + "6I", head[:24])
    s0 = s1 = 0
    for i in range(0, 6, 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return (s0, s1) == (check1, check2)


# What a crash while SQLite writes a transaction to the WAL leaves: a file that ends
# inside a frame, or (in a WAL being reused) a frame whose header was written over an
# older frame whose page was not. Either way only the transaction written last is cut,
# and its commit had not returned (not confirmed); tests that kill brokers on purpose
# recognise this text.
CUT_WAL_WARNING = (
    "WAL %s ends with its last transaction cut short (a crash while it was "
    "written): that transaction may have been lost"
)


def _check_wal_frames(conn: sqlite3.Connection, path: Path, stamp: str) -> None:
    """Log (and keep a copy of) committed transactions SQLite had to drop from the WAL.

    SQLite's WAL recovery stops at the first frame whose checksum fails. The
    frames after that point are either left over from an earlier generation
    of the WAL (other salts: normal), a transaction the process died in the
    middle of (no commit frame: normal, it was never confirmed), or committed
    transactions after a damaged frame: those are what we report.
    """
    busy, valid, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    wal = _sidecar(path, "-wal")
    if busy or valid < 0 or not wal.exists():
        return
    with wal.open("rb") as f:
        header = f.read(_WAL_HEADER.size)
        if len(header) < _WAL_HEADER.size:
            return
        _, _, page_size, _, salt1, salt2, _, _ = _WAL_HEADER.unpack(header)
        frame_size = _FRAME_HEADER.size + 8 + page_size
        f.seek(_WAL_HEADER.size + valid * frame_size)
        # Frames of the current generation carry the header's salts; a frame
        # whose own salt was hit by damage is simply not counted.
        dropped = commits = 0
        last_is_commit = False  # the last frame of this generation is a commit frame
        while len(raw := f.read(frame_size)) == frame_size:
            _, commit, s1, s2 = _FRAME_HEADER.unpack_from(raw)
            if (s1, s2) == (salt1, salt2):
                dropped += 1
                commits += commit != 0
                last_is_commit = commit != 0
        # SQLite writes whole frames; a WAL that ends inside one was cut (a truncated
        # file): its last transaction may have been committed, and we cannot tell, so
        # it counts as lost (a crash mid-write only cuts what was never confirmed, so
        # this can warn once too often, never once too few).
        cut = 0 < len(raw) < frame_size
        if cut and len(raw) >= _FRAME_HEADER.size:
            _, commit, s1, s2 = _FRAME_HEADER.unpack_from(raw)
            cut = (s1, s2) == (salt1, salt2)
    if (cut and not commits) or (commits == 1 and last_is_commit and not cut):
        # One transaction, the last one written, failed its checksum: SQLite writes a
        # frame's header and its page in two writes, and a crash between them in a
        # reused WAL leaves a current header on a stale page. A bit flip in that same
        # transaction looks alike; the warning says it may have been lost either way.
        log.warning(CUT_WAL_WARNING, wal)
        commits = 0
    if commits:
        kept = wal.with_name(f"{wal.name}.damaged-{stamp}")
        try:
            shutil.copyfile(wal, kept)
        except OSError as error:  # a full disk must not stop the start
            log.warning("could not keep a copy of the damaged WAL %s: %s", wal, error)
            kept.unlink(missing_ok=True)
        log.warning(
            "WAL %s is damaged after frame %d: %d frames holding %d committed transactions "
            "were dropped (copy kept as %s)",
            wal,
            valid,
            dropped,
            commits,
            kept.name,
        )


def _move_aside(path: Path, stamp: str) -> Path:
    """Rename the database and its WAL so that SQLite still pairs them, for salvage."""
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal"):
        source = _sidecar(path, suffix)
        if source.exists():
            source.rename(_sidecar(aside, suffix))
    _sidecar(path, "-shm").unlink(missing_ok=True)
    log.warning("damaged database moved aside as %s", aside.name)
    return aside


def salvage(source: Path, target: sqlite3.Connection) -> None:
    """Copy every row SQLite can still read from ``source`` into ``target``, as stored."""
    try:
        conn = reader(source)
    except sqlite3.DatabaseError as exc:
        log.warning("nothing salvaged from %s: %s", source.name, exc)
        return
    try:
        target.execute("BEGIN")
        for table, columns in TABLES.items():
            if not _has_table(conn, table):  # an older format's file (see MIGRATIONS)
                continue
            rows = 0
            marks = ",".join("?" * len(columns))
            # meta: the salvaged format version replaces the fresh file's (rows as stored).
            verb = "REPLACE" if table == "meta" else "IGNORE"
            insert = f"INSERT OR {verb} INTO {table} ({','.join(columns)}) VALUES ({marks})"
            for _, *row in readable_rows(conn, table, columns):
                if table == "meta" and row[1] is None:
                    continue  # damaged: the fresh file's value stays
                target.execute(insert, row)
                rows += 1
            log.warning("salvaged %d rows of table %s from %s", rows, table, source.name)
        target.execute("COMMIT")
    finally:
        conn.close()


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    try:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return conn.execute(query, (table,)).fetchone() is not None
    except sqlite3.DatabaseError:
        return True  # a damaged schema: try the table, readable_rows steps over failures


def readable_rows(
    conn: sqlite3.Connection, table: str, columns: tuple[str, ...]
) -> Iterator[tuple[Any, ...]]:
    """(rowid, *columns) of ``table`` in rowid order, stepping over parts that fail to read.

    A damaged page aborts a scan; we restart after the last row read, and when
    that seek fails too, probe further rowids at doubling distances (rowids
    are assigned in increasing order, so the damaged range is skipped in a
    few probes). Every probe moves forward, so this ends.
    """
    select = f"SELECT rowid, {','.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid"
    last, step = -(2**63), 1
    while last < 2**63 - 1:
        try:
            for row in conn.execute(select, (last,)):
                last, step = row[0], 1
                yield tuple(row)
            return
        except sqlite3.DatabaseError as exc:
            if step == 1:
                log.warning("table %s unreadable after rowid %d: %s", table, last, exc)
            last = min(2**63 - 1, max(last, 0) + step)
            step *= 2


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()
