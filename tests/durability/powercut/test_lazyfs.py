"""The power-cut layer itself: what a cut keeps, and what it drops.

These pin down the model the broker tests rely on: data reaches the disk at
fsync, names at once (or, in strict mode, at the fsync of their directory),
everything at a clean unmount; and SQLite on the layer keeps exactly the
commits it synced.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from .conftest import MakeDisk


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: Path, data: bytes, *, sync: bool, offset: int | None = None) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, offset if offset is not None else os.fstat(fd).st_size)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_data_is_lost_and_synced_data_kept(make_disk: MakeDisk) -> None:
    disk = make_disk()
    disk.mount()
    f = disk.mountpoint / "f"
    write(f, b"A" * 10_000, sync=True)
    write(f, b"B" * 5_000, sync=False)  # appended
    write(f, b"C" * 100, sync=False, offset=4090)  # across a page boundary of synced data
    expected_live = b"A" * 4090 + b"C" * 100 + b"A" * 5810 + b"B" * 5000
    assert f.read_bytes() == expected_live
    disk.cut()
    disk.mount()
    assert f.read_bytes() == b"A" * 10_000


def test_names_are_durable_at_once_but_not_their_data(make_disk: MakeDisk) -> None:
    disk = make_disk()
    disk.mount()
    (disk.mountpoint / "d").mkdir()
    write(disk.mountpoint / "d" / "f", b"never synced", sync=False)
    disk.cut()
    assert (disk.backing / "d" / "f").read_bytes() == b""
    disk.mount()
    assert (disk.mountpoint / "d" / "f").read_bytes() == b""


def test_strict_names_wait_for_their_directory_sync(make_disk: MakeDisk) -> None:
    disk = make_disk(strict=True)
    disk.mount()
    root = disk.mountpoint
    write(root / "lost", b"synced data, unsynced name", sync=True)
    (root / "d").mkdir()
    fsync_path(root)  # every name in the root: "lost" and "d"
    write(root / "d" / "kept", b"synced data and name", sync=True)
    fsync_path(root / "d")
    write(root / "d" / "gone", b"synced data only", sync=True)
    (root / "d" / "kept").rename(root / "d" / "moved")  # not synced: undone by the cut
    disk.cut()
    disk.mount()
    assert sorted(os.listdir(root)) == ["d", "lost"]
    assert (root / "lost").read_bytes() == b"synced data, unsynced name"
    assert os.listdir(root / "d") == ["kept"]
    assert (root / "d" / "kept").read_bytes() == b"synced data and name"


def test_strict_directory_created_but_not_synced_into_its_parent_is_lost(
    make_disk: MakeDisk,
) -> None:
    disk = make_disk(strict=True)
    disk.mount()
    data = disk.mountpoint / "data"
    data.mkdir()
    write(data / "f", b"x", sync=True)
    fsync_path(data)  # the file's name is in data; data's own name is not in the root
    disk.cut()
    assert not (disk.backing / "data").exists()
    disk.mount()
    assert os.listdir(disk.mountpoint) == []


def test_truncate_then_grow_reads_zeros_and_a_cut_restores_the_synced_size(
    make_disk: MakeDisk,
) -> None:
    disk = make_disk()
    disk.mount()
    f = disk.mountpoint / "f"
    write(f, bytes(range(256)) * 40, sync=True)
    os.truncate(f, 100)
    write(f, b"end", sync=False, offset=9000)
    assert f.read_bytes() == bytes(range(100)) + bytes(8900) + b"end"
    disk.cut()
    disk.mount()
    assert f.read_bytes() == bytes(range(256)) * 40
    os.truncate(f, 100)
    write(f, b"end", sync=True, offset=9000)
    disk.cut()
    disk.mount()
    assert f.read_bytes() == bytes(range(100)) + bytes(8900) + b"end"


def test_an_unlinked_open_file_stays_readable_and_leaves_nothing(make_disk: MakeDisk) -> None:
    disk = make_disk()
    disk.mount()
    f = disk.mountpoint / "f"
    write(f, b"data", sync=True)
    with f.open("rb") as opened:
        f.unlink()
        assert opened.read() == b"data"
    assert os.listdir(disk.mountpoint) == []
    disk.unmount()
    assert os.listdir(disk.backing) == []


def test_clean_unmount_syncs_everything(make_disk: MakeDisk) -> None:
    disk = make_disk(strict=True)
    disk.mount()
    (disk.mountpoint / "d").mkdir()
    write(disk.mountpoint / "d" / "f", b"unsynced", sync=False)
    disk.unmount()
    assert (disk.backing / "d" / "f").read_bytes() == b"unsynced"


@pytest.mark.parametrize(("synchronous", "survive"), [("FULL", 50), ("OFF", 0)])
def test_sqlite_keeps_exactly_its_synced_commits(
    make_disk: MakeDisk, synchronous: str, survive: int
) -> None:
    """The layer catches a missing fsync: with synchronous=OFF, committed rows vanish."""
    disk = make_disk()
    disk.mount()
    conn = sqlite3.connect(disk.mountpoint / "db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE t (n INTEGER)")
    for n in range(50):
        conn.execute("INSERT INTO t VALUES (?)", (n,))
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (50,)
    # No close: the process "dies" with the connection open.
    disk.cut()
    conn.close()  # only frees the handle; its files are gone with the mount
    disk.mount()
    conn = sqlite3.connect(disk.mountpoint / "db")
    try:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
        rows = conn.execute("SELECT count(*) FROM t").fetchone()[0] if tables else 0
    finally:
        conn.close()
    assert rows == survive
