"""Disk full: nothing confirmed is lost, nothing unwritten is confirmed, writing resumes.

The data folder is a 2 MiB tmpfs that the test mounts (as root), partly
taken by a filler file. The store fills the rest; its writes then fail, so
it reports ``failing`` and holds back sync callbacks; deleting the filler
gives space back and the held batch commits.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import Opener, message, synced

from pigeon.core.ports import QueueRecord


@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("2m")


async def wait_until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


async def test_full_disk_holds_confirms_and_recovers(small_disk: Path, open_store: Opener) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(bytes(1024 * 1024))
    data = small_disk / "data"
    alarms: list[bool] = []
    store = open_store(data, retry_interval=0.02, on_failing=alarms.append)
    store.load()
    store.save_queue(QueueRecord("/", "q", True, False, {}))
    await synced(store)

    confirmed: list[int] = []
    seq = 0
    while not store.failing:
        assert seq < 1000, "2 MiB never filled up"
        body = os.urandom(32 * 1024)  # incompressible, in case a file system compresses
        store.add_message("/", "q", seq, message(seq, body=body))
        store.sync(lambda n=seq: confirmed.append(n))
        seq += 1
        await asyncio.sleep(0.005)  # let batches commit one by one, as a publisher would

    assert alarms == [True]
    held = len(confirmed)
    # Writes go on being accepted (queued) while failing, and not confirmed.
    store.add_message("/", "q", seq, message(seq))
    store.sync(lambda n=seq: confirmed.append(n))
    last = seq
    await asyncio.sleep(0.2)  # several retries: none may confirm anything
    assert store.failing and len(confirmed) == held

    filler.unlink()  # space comes back
    await wait_until(lambda: not store.failing, "the store writes again")
    await wait_until(lambda: last in confirmed, "the held syncs run")
    assert alarms == [True, False]
    assert confirmed == sorted(confirmed)
    store.close()

    snapshot = open_store(data).load()
    stored = {m.seq for m in snapshot.messages[("/", "q")]}
    assert set(confirmed) <= stored


async def test_closing_while_the_disk_is_full_confirms_nothing_unwritten(
    small_disk: Path, open_store: Opener
) -> None:
    (small_disk / "filler").write_bytes(bytes(1024 * 1024))
    data = small_disk / "data"
    store = open_store(data, retry_interval=0.02)
    store.load()
    confirmed: list[int] = []
    seq = 0
    while not store.failing:
        assert seq < 1000, "2 MiB never filled up"
        store.add_message("/", "q", seq, message(seq, body=os.urandom(32 * 1024)))
        store.sync(lambda n=seq: confirmed.append(n))
        seq += 1
        await asyncio.sleep(0.005)
    store.close()  # returns: gives the failing batch one last try, then drops it
    await asyncio.sleep(0.05)  # let any (wrong) callback scheduled by close run
    (small_disk / "filler").unlink()

    snapshot = open_store(data).load()
    stored = {m.seq for m in snapshot.messages.get(("/", "q"), [])}
    assert set(confirmed) <= stored
    assert len(confirmed) < seq
