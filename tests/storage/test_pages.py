"""The pager of a data folder (``pages.db``): transient messages of paged backlogs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from store_helpers import Opener, message, same, synced

from pigeon.core.message import Message
from pigeon.storage.pages import PAGES_NAME, PageFile
from pigeon.storage.sqlite import SQLiteStore


async def write(pager: PageFile, queue: str, items: list[tuple[int, Message]]) -> bool:
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    pager.write("/", queue, items, done.set_result)
    return await asyncio.wait_for(done, 30)


async def fetch(pager: PageFile, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
    done: asyncio.Future[list[tuple[int, Message]]] = asyncio.get_running_loop().create_future()
    pager.fetch("/", queue, seqs, done.set_result)
    return await asyncio.wait_for(done, 30)


def pager_of(store: SQLiteStore) -> PageFile:
    pager = store.pager
    assert pager is not None
    return pager


async def test_written_messages_read_back_in_order_and_are_forgotten(open_store: Opener) -> None:
    store = open_store(compress_threshold=16)
    store.load()
    pager = pager_of(store)
    items = [(seq, message(seq, body=bytes([seq]) * 100)) for seq in range(1, 11)]
    assert await write(pager, "q", items)
    assert pager.backlog == 0
    read = pager.read("/", "q", [2, 3, 5, 9])
    assert [seq for seq, _ in read] == [2, 3, 5, 9]
    assert all(same(got, items[seq - 1][1]) for seq, got in read)
    assert pager.read("/", "other", [2, 3]) == []
    pager.discard("/", "q", 5)
    pager.drop("/", "missing")
    assert await write(pager, "q", [])  # the thread is past the discard
    assert [seq for seq, _ in pager.read("/", "q", list(range(1, 11)))] == [6, 7, 8, 9, 10]
    pager.drop("/", "q")
    assert await write(pager, "q", [])
    assert pager.read("/", "q", list(range(1, 11))) == []


async def test_pages_never_outlive_the_store_and_never_move_its_positions(
    open_store: Opener, data_dir: Path
) -> None:
    store = open_store()
    store.load()
    await synced(store)
    written, durable = store.written, store.durable
    assert await write(pager_of(store), "q", [(1, message(1))])
    # Not a store write: a confirm compares these, and a page is no reason to wait.
    assert (store.written, store.durable) == (written, durable)
    store.close()
    assert not list(data_dir.glob(PAGES_NAME + "*")), "a clean close deletes the pages"

    # A crash leaves the file behind; the next open starts it afresh.
    leftover = open_store(data_dir / "copy")
    leftover.load()
    assert await write(pager_of(leftover), "q", [(1, message(1))])
    (data_dir / "crashed").mkdir()
    for path in (data_dir / "copy").glob(PAGES_NAME + "*"):
        path.rename(data_dir / "crashed" / path.name)
    reopened = open_store(data_dir / "crashed")
    reopened.load()
    assert pager_of(reopened).read("/", "q", [1]) == []


async def test_fetches_read_off_the_loop_and_never_miss_a_write(open_store: Opener) -> None:
    store = open_store()
    store.load()
    pager = pager_of(store)
    items = [(seq, message(seq, body=bytes([seq]) * 100)) for seq in range(1, 201)]
    assert await write(pager, "q", items[:100])
    got = await fetch(pager, "q", [3, 50, 100])
    assert [seq for seq, _ in got] == [3, 50, 100]
    assert all(same(found, items[seq - 1][1]) for seq, found in got)
    assert await fetch(pager, "q", []) == []
    assert await fetch(pager, "other", [3]) == []

    # Asked before the writer committed these: the fetch waits behind the write.
    written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    pager.write("/", "q", items[100:], written.set_result)
    assert pager.backlog == 100
    late = asyncio.ensure_future(fetch(pager, "q", list(range(101, 201))))
    assert await asyncio.wait_for(written, 30)
    assert [seq for seq, _ in await late] == list(range(101, 201))

    # Discards and drops handed over before a fetch are seen by it too.
    pager.discard("/", "q", 150)
    assert await write(pager, "q", [])
    assert [seq for seq, _ in await fetch(pager, "q", [149, 150, 151])] == [151]
    pager.drop("/", "q")
    assert await write(pager, "q", [])
    assert await fetch(pager, "q", list(range(1, 201))) == []
