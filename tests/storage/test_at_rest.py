"""Compression (zstd) and encryption (AES-GCM) of stored bodies, through close and reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from store_helpers import Opener, message, same, synced

from pigeon.core.message import Message
from pigeon.core.ports import QueueRecord
from pigeon.storage.sqlite import WrongKey

pytest.importorskip("zstandard")
pytest.importorskip("cryptography")

KEY = bytes(range(32))
Q = QueueRecord("/", "q", True, False, {})
SECRET = b"top-secret-payload-" * 10
BODIES = [b"", b"tiny", SECRET, b"a" * 100_000, os.urandom(50_000), bytes(1 << 20)]


async def write(open_store: Opener, **options: object) -> list[Message]:
    store = open_store(**options)
    store.load()
    store.save_queue(Q)
    written = [message(seq, body=body) for seq, body in enumerate(BODIES)]
    for seq, msg in enumerate(written):
        store.add_message("/", "q", seq, msg)
    await synced(store)
    store.close()
    return written


def stored_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("pigeon.db"))


async def read_back(open_store: Opener, written: list[Message], **options: object) -> None:
    store = open_store(**options)
    snapshot = store.load()
    back = [m.message for m in snapshot.messages[("/", "q")]]
    assert len(back) == len(written)
    for original, restored in zip(written, back, strict=True):
        assert same(restored, original)
    for seq, original in enumerate(written):
        assert store.read_body("/", "q", seq) == original.body
    store.close()


async def test_compressed_bodies_round_trip_and_take_less_room(
    open_store: Opener, data_dir: Path
) -> None:
    written = await write(open_store, compress_threshold=64)
    # 100 kB of 'a' and 1 MiB of zeros compress to almost nothing.
    assert len(stored_bytes(data_dir)) < 400_000
    await read_back(open_store, written)  # reading needs no option
    await read_back(open_store, written, compress_threshold=1_000_000)


async def test_encrypted_bodies_round_trip_and_are_not_on_disk_in_clear(
    open_store: Opener, data_dir: Path
) -> None:
    written = await write(open_store, encryption_key=KEY)
    assert SECRET[:40] not in stored_bytes(data_dir)
    await read_back(open_store, written, encryption_key=KEY)


async def test_compressed_and_encrypted(open_store: Opener, data_dir: Path) -> None:
    written = await write(open_store, encryption_key=KEY, compress_threshold=0)
    assert SECRET[:40] not in stored_bytes(data_dir)
    assert len(stored_bytes(data_dir)) < 400_000
    await read_back(open_store, written, encryption_key=KEY, compress_threshold=0)


async def test_wrong_key_is_a_clear_error_at_load(open_store: Opener) -> None:
    await write(open_store, encryption_key=KEY)
    with pytest.raises(WrongKey, match="does not match"):
        open_store(encryption_key=bytes(32)).load()
    with pytest.raises(WrongKey, match="key is needed"):
        open_store().load()
    # The failed attempts left the folder usable with the right key.
    snapshot = open_store(encryption_key=KEY).load()
    assert len(snapshot.messages[("/", "q")]) == len(BODIES)


async def test_turning_encryption_on_later_keeps_older_bodies_readable(
    open_store: Opener,
) -> None:
    written = await write(open_store)
    store = open_store(encryption_key=KEY)
    store.load()
    extra = message(100, body=SECRET)
    store.add_message("/", "q", 100, extra)
    await synced(store)
    store.close()
    snapshot = open_store(encryption_key=KEY).load()
    back = [m.message for m in snapshot.messages[("/", "q")]]
    assert all(same(a, b) for a, b in zip(back, [*written, extra], strict=True))


async def test_a_key_of_the_wrong_size_is_refused(open_store: Opener) -> None:
    with pytest.raises(ValueError, match="16, 24 or 32"):
        open_store(encryption_key=b"short")
