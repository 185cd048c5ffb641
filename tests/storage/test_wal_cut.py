"""A WAL whose last transaction was cut while it was written is a crash, not damage.

SQLite writes a WAL frame's header and its page in two writes. A crash between them
in a WAL being reused (its old frames still in the file) leaves a header of the
current generation over a stale page: the frame fails its checksum. When that frame
is the commit frame of the transaction written last, nothing committed before it is
lost and that transaction's commit never returned (never confirmed): the store says
the last transaction may have been lost, as for a WAL that ends inside a frame. A
bad frame with committed transactions after it is damage, reported as such.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
from pathlib import Path

import pytest
from store_helpers import Opener, message, synced

from pigeon.core.ports import QueueRecord
from pigeon.storage.sqlite import SQLiteStore

Q = QueueRecord("/", "q", True, False, {})
WAL_HEADER = struct.Struct(">IIIIIIII")
FRAME_HEADER = struct.Struct(">IIIIII")
BATCHES = 5


async def build(folder: Path, copy: Path) -> None:
    """A WAL of BATCHES committed transactions, copied while the writer is idle."""
    store = SQLiteStore(folder, loop=asyncio.get_running_loop())
    store.load()
    store.save_queue(Q)
    for batch in range(BATCHES):
        for seq in range(batch * 10, batch * 10 + 10):
            store.add_message("/", "q", seq, message(seq))
        await synced(store)
    copy.mkdir()
    for name in ("pigeon.db", "pigeon.db-wal"):
        shutil.copyfile(folder / name, copy / name)
    store.close()


def commit_frames(wal: Path) -> tuple[int, list[int]]:
    """(frame size, offsets of the current generation's commit frames)."""
    data = wal.read_bytes()
    _, _, page_size, _, salt1, salt2, _, _ = WAL_HEADER.unpack_from(data)
    size = FRAME_HEADER.size + page_size
    commits = []
    for offset in range(WAL_HEADER.size, len(data) - size + 1, size):
        _, commit, s1, s2, _, _ = FRAME_HEADER.unpack_from(data, offset)
        if (s1, s2) == (salt1, salt2) and commit:
            commits.append(offset)
    return size, commits


def stale_page(wal: Path, frame: int) -> None:
    """The frame's header stays; its page is not the one the header was written for."""
    with wal.open("r+b") as f:
        f.seek(frame + FRAME_HEADER.size + 100)
        page = f.read(64)
        f.seek(frame + FRAME_HEADER.size + 100)
        f.write(bytes(b ^ 0x5A for b in page))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("which", ["last", "middle"])
async def test_cut_last_transaction_is_not_damage(
    tmp_path: Path, open_store: Opener, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    copy = tmp_path / "copy"
    await build(tmp_path / "live", copy)
    wal = copy / "pigeon.db-wal"
    _, commits = commit_frames(wal)
    assert len(commits) >= BATCHES
    stale_page(wal, commits[-1] if which == "last" else commits[1])

    caplog.set_level(logging.WARNING, logger="pigeon.storage")
    snapshot = open_store(copy).load()
    seqs = sorted(m.seq for m in snapshot.messages.get(("/", "q"), []))
    said = warnings(caplog)
    if which == "last":
        # Everything but the last transaction is there; no damage is claimed.
        assert seqs == list(range((BATCHES - 1) * 10))
        assert any("last transaction cut short" in w for w in said), said
        assert not any("damaged" in w for w in said), said
        assert not list(copy.glob("*.damaged-*"))
    else:
        # Committed transactions after the bad frame are lost: that is damage.
        assert any("damaged after frame" in w for w in said), said
        assert list(copy.glob("*.damaged-*"))
