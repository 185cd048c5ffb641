"""The SQLite store in isolation: what is written comes back, in order, after a reopen."""

from __future__ import annotations

import asyncio
import logging
import os
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from store_helpers import Opener, message, same, synced

from pigeon.core.message import Long, Message, Properties
from pigeon.core.ports import BindingRecord, ExchangeRecord, QueueRecord, Snapshot
from pigeon.storage.sqlite import StoreLocked

EX = ExchangeRecord("/", "orders", "topic", True, False, False, {"alternate-exchange": "ae"})
Q = QueueRecord("/", "work", True, False, {"x-max-priority": 10, "x-dead-letter-exchange": ""})
B = BindingRecord("/", "orders", "work", "queue", "order.#", {"x-match": "all", "n": 1})


async def reopen(open_store: Opener, **options: object):  # type: ignore[no-untyped-def]
    store = open_store(**options)
    return store, store.load()


async def test_fresh_folder_is_created_and_loads_empty(open_store: Opener, data_dir: Path) -> None:
    assert not data_dir.exists()
    snapshot = open_store().load()
    assert snapshot == Snapshot()
    assert (data_dir / "pigeon.db").exists()


async def test_definitions_and_documents_round_trip(open_store: Opener) -> None:
    store = open_store()
    store.load()
    store.save_vhost("/")
    store.save_vhost("other")
    store.save_exchange(EX)
    store.save_queue(Q)
    store.save_binding(B)
    store.save_binding(BindingRecord("/", "orders", "audit", "exchange", "", {}))
    store.save_document("users", "guest", {"hash": b"\x01\x02", "tags": ["administrator"]})
    store.save_document("permissions", "guest@/", [".*", ".*", ".*"])
    await synced(store)
    store.close()

    _, snap = await reopen(open_store)
    assert snap.vhosts == ["/", "other"]
    assert snap.exchanges == [EX]
    assert snap.queues == [Q]
    assert snap.bindings == [B, BindingRecord("/", "orders", "audit", "exchange", "", {})]
    assert snap.documents == {
        "users": {"guest": {"hash": b"\x01\x02", "tags": ["administrator"]}},
        "permissions": {"guest@/": [".*", ".*", ".*"]},
    }


async def test_deletes_cascade_as_documented(open_store: Opener) -> None:
    store = open_store()
    store.load()
    store.save_vhost("/")
    store.save_exchange(EX)
    store.save_queue(Q)
    store.save_queue(QueueRecord("/", "keep", True, False, {}))
    store.save_binding(B)
    store.save_binding(BindingRecord("/", "amq.direct", "keep", "queue", "k", {}))
    store.save_binding(BindingRecord("/", "amq.direct", "orders", "exchange", "e", {}))
    store.add_message("/", "work", 1, message(1))
    store.add_message("/", "keep", 1, message(1))
    store.save_document("users", "bob", {})
    await synced(store)
    store.delete_queue("/", "work")
    store.delete_exchange("/", "orders")
    # Arguments in another order are the same binding.
    store.delete_binding(BindingRecord("/", "amq.direct", "keep", "queue", "k", {}))
    store.delete_document("users", "bob")
    await synced(store)
    store.close()

    store, snap = await reopen(open_store)
    assert snap.queues == [QueueRecord("/", "keep", True, False, {})]
    assert snap.exchanges == [] and snap.bindings == [] and snap.documents == {}
    assert list(snap.messages) == [("/", "keep")]
    store.delete_vhost("/")
    await synced(store)
    store.close()
    _, snap = await reopen(open_store)
    assert (snap.vhosts, snap.queues, snap.messages) == ([], [], {})


async def test_binding_arguments_identify_a_binding_whatever_their_order(
    open_store: Opener,
) -> None:
    store = open_store()
    store.load()
    store.save_binding(BindingRecord("/", "h", "q", "queue", "", {"a": 1, "b": 2}))
    store.save_binding(BindingRecord("/", "h", "q", "queue", "", {"a": 1, "b": 3}))
    store.delete_binding(BindingRecord("/", "h", "q", "queue", "", {"b": 2, "a": 1}))
    await synced(store)
    store.close()
    _, snap = await reopen(open_store)
    assert [b.arguments for b in snap.bindings] == [{"a": 1, "b": 3}]


async def test_messages_with_every_property_type_round_trip(open_store: Opener) -> None:
    headers = {
        "table": {"inner": {"deeper": [1, "two", None, True]}},
        "bytes": b"\x00\xff\xfe",
        "decimal": Decimal("-12.345"),
        "when": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "none": None,
        "yes": True,
        "no": False,
        "big": 2**63 - 1,
        "huge": 2**100,
        "neg": -(2**63),
        "float": 0.1,
        "list": [[], {}, [b""]],
    }
    props = Properties(
        content_type="application/octet-stream",
        content_encoding="identity",
        headers=(*headers.items(), ("repeated", 1), ("repeated", Long(2))),
        durable=True,
        priority=255,
        correlation_id=b"corr",
        reply_to="amq.rabbitmq.reply-to",
        ttl=1000,
        message_id=b"\x00mid\xff",
        timestamp=2**40,
        type="kind",
        user_id="guest",
        app_id="app",
        annotations=(("amqp091.cluster_id", ""),),
    )
    bodies = [b"", b"\x00", bytes(range(256)) * 4, b"\xff" * 65_536, bytes(1 << 20)]
    originals = [Message("e", f"k{i}", props, body) for i, body in enumerate(bodies)]
    originals.append(Message("", "", Properties(), b"bare"))
    store = open_store()
    store.load()
    for seq, msg in enumerate(originals):
        store.add_message("/", "q", seq, msg)
    await synced(store)
    store.close()

    _, snap = await reopen(open_store)
    stored = snap.messages[("/", "q")]
    assert [m.seq for m in stored] == list(range(len(originals)))
    for original, back in zip(originals, stored, strict=True):
        assert same(back.message, original)
    # Repeated header names keep their order and types (a Long stays a Long).
    assert type(stored[0].message.properties.headers[-1][1]) is Long


async def test_messages_come_back_in_seq_order_per_queue(open_store: Opener) -> None:
    store = open_store()
    store.load()
    for seq in (5, 1, 9, 3):
        store.add_message("/", "a", seq, message(seq))
        store.add_message("v", "a", seq, message(seq))
    store.remove_message("/", "a", 9)
    await synced(store)
    store.remove_message("/", "a", 3)
    store.purge("v", "a")
    await synced(store)
    store.close()
    _, snap = await reopen(open_store)
    assert {k: [m.seq for m in v] for k, v in snap.messages.items()} == {("/", "a"): [1, 5]}


async def test_group_commit_many_adds_few_commits(open_store: Opener) -> None:
    store = open_store()
    store.load()
    done: list[int] = []
    for seq in range(10_000):
        store.add_message("/", "q", seq, message(seq))
        if seq % 100 == 99:
            store.sync(lambda seq=seq: done.append(seq))
            # Let the loop turn so that batches can leave while we publish.
            await asyncio.sleep(0)
    assert store.written == 10_000
    await synced(store)
    assert done == list(range(99, 10_000, 100))
    assert 1 <= store.commits <= 100
    store.close()
    _, snap = await reopen(open_store)
    assert len(snap.messages[("/", "q")]) == 10_000


async def test_sync_callbacks_wait_for_their_batch_and_keep_order(open_store: Opener) -> None:
    store = open_store()
    store.load()
    order: list[str] = []
    store.sync(lambda: order.append("empty"))  # nothing written: next loop turn
    store.add_message("/", "q", 1, message(1))
    assert store.durable < store.written == 1
    store.sync(lambda: order.append("first"))
    # A barrier asks for a commit; it does not make the write durable by itself.
    assert store.durable < store.written
    await asyncio.sleep(0)  # the first batch leaves; the next write piles up behind it
    store.add_message("/", "q", 2, message(2))
    store.sync(lambda: order.append("second"))
    await synced(store)
    assert order == ["empty", "first", "second"]
    assert store.durable == store.written == 2


async def test_add_then_remove_before_writing_costs_nothing_on_disk(
    open_store: Opener, data_dir: Path
) -> None:
    store = open_store()
    store.load()
    for seq in range(200):
        store.add_message("/", "q", seq, message(seq, body=bytes(50_000)))
        store.remove_message("/", "q", seq)
    await synced(store)
    wal = data_dir / "pigeon.db-wal"
    # 200 x 50 kB written would be 10 MB of WAL; cancelled, nothing of it is.
    assert not wal.exists() or wal.stat().st_size < 200_000
    store.close()
    _, snap = await reopen(open_store)
    assert snap.messages == {}


async def test_rewrites_replace_the_stored_copy_and_removes_still_win(
    open_store: Opener,
) -> None:
    store = open_store()
    store.load()
    store.add_message("/", "q", 1, message(1, body=b"a"))
    store.rewrite_message("/", "q", 1, message(1, body=b"a2"))  # before its add is written
    store.add_message("/", "q", 2, message(2, body=b"b"))
    store.add_message("/", "q", 3, message(3, body=b"c"))
    await synced(store)
    store.rewrite_message("/", "q", 2, message(2, body=b"b2"))  # written, not replaced
    store.rewrite_message("/", "q", 3, message(3, body=b"c2"))
    store.remove_message("/", "q", 3)  # in the same batch as its rewrite: gone
    await synced(store)
    store.close()
    _, snap = await reopen(open_store)
    assert [(m.seq, m.message.body) for m in snap.messages[("/", "q")]] == [(1, b"a2"), (2, b"b2")]
    store.close()


async def test_read_body_before_and_after_commit_and_reopen(open_store: Opener) -> None:
    store = open_store()
    store.load()
    store.add_message("/", "q", 1, message(1, body=b"pending"))
    assert store.read_body("/", "q", 1) == b"pending"
    await synced(store)
    assert store.read_body("/", "q", 1) == b"pending"
    with pytest.raises(KeyError):
        store.read_body("/", "q", 2)
    store.close()
    store, _ = await reopen(open_store)
    assert store.read_body("/", "q", 1) == b"pending"


async def test_writes_before_load_are_kept(open_store: Opener) -> None:
    store = open_store()
    store.save_queue(Q)
    store.load()
    await synced(store)
    store.close()
    _, snap = await reopen(open_store)
    assert snap.queues == [Q]


async def test_close_flushes_unsynced_writes(open_store: Opener) -> None:
    store = open_store()
    store.load()
    for seq in range(100):
        store.add_message("/", "q", seq, message(seq))
    store.close()
    _, snap = await reopen(open_store)
    assert len(snap.messages[("/", "q")]) == 100


async def test_a_second_store_cannot_open_the_same_folder(open_store: Opener) -> None:
    open_store().load()
    with pytest.raises(StoreLocked):
        open_store().load()


async def test_no_fsync_says_so_loudly(
    open_store: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pigeon.storage"):
        store = open_store(fsync=False)
        store.load()
    assert any("UNSAFE" in r.getMessage() for r in caplog.records)
    store.add_message("/", "q", 1, message(1))
    await synced(store)


async def test_bodies_are_not_kept_in_memory_once_written(open_store: Opener) -> None:
    store = open_store()
    store.load()
    tracemalloc.start()
    try:
        for seq in range(40):
            store.add_message("/", "q", seq, message(seq, body=os.urandom(1 << 20)))
        await synced(store)
        store.add_message("/", "q", 100, message(100))  # the next batch replaces the last
        await synced(store)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 8 << 20, f"{held >> 20} MiB still held after writing 40 MiB of bodies"
    assert len(store.read_body("/", "q", 39)) == 1 << 20


async def test_read_messages_in_the_order_asked_from_memory_and_disk(
    open_store: Opener,
) -> None:
    store = open_store()
    store.load()
    for seq in range(0, 1200, 2):
        store.add_message("/", "q", seq, message(seq))
    await synced(store)
    store.add_message("/", "q", 5000, message(5000))  # not committed yet
    asked = [5000, *range(1198, -1, -1), 7]  # 7 was never stored
    got = store.read_messages("/", "q", asked)
    assert [seq for seq, _ in got] == [5000, *range(1198, -1, -2)]
    assert all(same(msg, message(seq)) for seq, msg in got)


async def test_read_messages_dense_stretch_skips_rows_not_asked(open_store: Opener) -> None:
    store = open_store()
    store.load()
    for seq in range(100, 300):
        store.add_message("/", "q", seq, message(seq))
    store.add_message("/", "other", 150, message(9))  # another queue's row in the range
    await synced(store)
    # A stretch with holes (rows there are not asked for): read as one range.
    asked = [s for s in range(120, 280) if s % 7]
    got = store.read_messages("/", "q", asked)
    assert [seq for seq, _ in got] == asked
    assert all(same(msg, message(seq)) for seq, msg in got)
    assert [seq for seq, _ in store.read_messages("/", "q", [299, 100, 10**9])] == [299, 100]
