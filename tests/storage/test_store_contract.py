"""The store contract: what every implementation of ``core.ports.Store`` must do.

Each test runs against the in-memory store and the SQLite store. "Reopen" is a
new store over the same state (the same ``MemoryState``, or the same data folder
after a clean close): whatever a store was told before must come back from it.
The tests at the end run a core node over the store, as the broker does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_helpers import message, same

from pigeon.core import replay
from pigeon.core.commands import (
    AddMessage,
    Bind,
    BindingRecord,
    Command,
    DeclareExchange,
    DeclareQueue,
    DeclareVhost,
    DeleteDocument,
    DeleteExchange,
    DeleteQueue,
    DeleteVhost,
    ExchangeRecord,
    ForgetRetained,
    Purge,
    QueueRecord,
    RemoveMessages,
    RetainMessage,
    SaveDocument,
    Unbind,
)
from pigeon.core.consumer import Consumer
from pigeon.core.entry import Entry
from pigeon.core.message import Message, Properties
from pigeon.core.node import Node
from pigeon.core.ports import MessageIndex, Snapshot, Store
from pigeon.core.queue import Queue
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.storage.memory import MemoryState, MemoryStore
from pigeon.storage.sqlite import SQLiteStore

EX = ExchangeRecord("/", "orders", "topic", True, False, False, {"alternate-exchange": "ae"})
Q = QueueRecord("/", "work", True, False, {"x-max-priority": 10})
Q2 = QueueRecord("/", "audit", True, False, {})
B = BindingRecord("/", "orders", "work", "queue", "order.#", {"n": 1})
B2 = BindingRecord("/", "orders", "audit", "queue", "#", {})


class Stores:
    """Opens stores of one kind over one state; closes them at the end."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.folder = folder
        self.state = MemoryState()
        self.current: Store | None = None

    def open(self, *, messages: bool = True, index: bool = True) -> tuple[Store, Snapshot]:
        store: Store
        if self.kind == "memory":
            store = MemoryStore(self.state)
        else:
            store = SQLiteStore(self.folder, loop=asyncio.get_running_loop())
        snapshot = store.load(messages=messages, index=index)
        self.current = store
        return store, snapshot

    async def reopen(self, *, messages: bool = True) -> tuple[Store, Snapshot]:
        """Wait until the current store is durable, close it, open a new one. Without
        ``messages``, load as the broker does: their numbers and sizes only."""
        assert self.current is not None
        await synced(self.current)
        self.current.close()
        return self.open(messages=messages)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()


@pytest.fixture(params=["memory", "sqlite"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    opened = Stores(request.param, tmp_path / "data")
    yield opened
    opened.close()


async def synced(store: Store) -> None:
    done = asyncio.get_running_loop().create_future()
    store.sync(lambda: done.set_result(None))
    await asyncio.wait_for(done, 30)


def definitions(snapshot: Snapshot) -> list[Command]:
    """The snapshot's commands other than messages, in a canonical order."""
    return sorted((c for c in snapshot.commands() if not isinstance(c, AddMessage)), key=repr)


def stored(snapshot: Snapshot, queue: str, vhost: str = "/") -> list[tuple[int, bytes]]:
    return [(m.seq, m.message.body) for m in snapshot.messages.get((vhost, queue), [])]


# -- commands round-trip -------------------------------------------------------------


async def test_every_command_round_trips_through_a_reopen(stores: Stores) -> None:
    store, snapshot = stores.open()
    assert snapshot == Snapshot()
    commands: list[Command] = [
        DeclareVhost("/"),
        DeclareVhost("other"),
        DeclareExchange(EX),
        DeclareQueue(Q),
        DeclareQueue(Q2),
        Bind(B),
        Bind(B2),
        SaveDocument("users", "guest", {"hash": b"\x01", "tags": ["administrator"]}),
        SaveDocument("permissions", "guest@/", [".*", ".*", ".*"]),
        AddMessage("/", "work", 1, message(1)),
        AddMessage("/", "work", 2, message(2)),
        AddMessage("/", "audit", 1, message(3)),
    ]
    for command in commands:
        store.apply(command)
    _, snapshot = await stores.reopen()
    assert definitions(snapshot) == sorted(
        (c for c in commands if not isinstance(c, AddMessage)), key=repr
    )
    got = [c for c in snapshot.commands() if isinstance(c, AddMessage)]
    assert sorted((c.queue, c.seq) for c in got) == [("audit", 1), ("work", 1), ("work", 2)]
    for command in got:
        want = next(c for c in commands if c == command or _same_add(c, command))
        assert isinstance(want, AddMessage) and same(want.message, command.message)


def _same_add(a: Command, b: AddMessage) -> bool:
    return isinstance(a, AddMessage) and (a.vhost, a.queue, a.seq) == (b.vhost, b.queue, b.seq)


async def test_named_methods_are_the_same_commands(stores: Stores) -> None:
    store, _ = stores.open()
    store.save_vhost("/")
    store.save_exchange(EX)
    store.save_queue(Q)
    store.save_binding(B)
    store.save_document("policy", "p", {"pattern": ".*"})
    store.add_message("/", "work", 1, message(1))
    _, snapshot = await stores.reopen()
    assert definitions(snapshot) == sorted(
        [
            DeclareVhost("/"),
            DeclareExchange(EX),
            DeclareQueue(Q),
            Bind(B),
            SaveDocument("policy", "p", {"pattern": ".*"}),
        ],
        key=repr,
    )
    assert stored(snapshot, "work") == [(1, b"body 1")]


async def test_deletes_cascade(stores: Stores) -> None:
    store, _ = stores.open()
    for command in (DeclareVhost("/"), DeclareVhost("v2"), DeclareExchange(EX)):
        store.apply(command)
    for command in (DeclareQueue(Q), DeclareQueue(Q2), Bind(B), Bind(B2)):
        store.apply(command)
    store.apply(DeclareQueue(QueueRecord("v2", "work", True, False, {})))
    store.apply(AddMessage("/", "work", 1, message(1)))
    store.apply(AddMessage("/", "audit", 1, message(2)))
    store.apply(AddMessage("v2", "work", 1, message(3)))
    store.apply(SaveDocument("users", "a", 1))
    store.apply(SaveDocument("users", "b", 2))
    store, snapshot = await stores.reopen()

    store.apply(DeleteQueue("/", "work"))  # its binding and its messages go with it
    store.apply(DeleteDocument("users", "a"))
    store, snapshot = await stores.reopen()
    assert snapshot.queues == [Q2, QueueRecord("v2", "work", True, False, {})]
    assert snapshot.bindings == [B2]
    assert stored(snapshot, "work") == [] and stored(snapshot, "audit") == [(1, b"body 2")]
    assert snapshot.documents == {"users": {"b": 2}}

    store.apply(DeleteExchange("/", "orders"))  # the bindings from it go too
    store.apply(DeleteVhost("v2"))  # with its queues and their messages
    store.apply(Unbind(B2))  # already gone: nothing happens
    _, snapshot = await stores.reopen()
    assert (snapshot.vhosts, snapshot.exchanges, snapshot.bindings) == (["/"], [], [])
    assert snapshot.queues == [Q2]
    assert stored(snapshot, "work", "v2") == []


async def test_unbind_and_redeclare(stores: Stores) -> None:
    store, _ = stores.open()
    for command in (DeclareVhost("/"), DeclareExchange(EX), DeclareQueue(Q), Bind(B), Bind(B)):
        store.apply(command)
    changed = QueueRecord("/", "work", True, True, {})
    store.apply(DeclareQueue(changed))  # the last declaration wins
    store.apply(Unbind(B))
    _, snapshot = await stores.reopen()
    assert snapshot.queues == [changed]
    assert snapshot.bindings == []


# -- messages --------------------------------------------------------------------------


async def test_each_queue_has_its_own_numbers(stores: Stores) -> None:
    store, _ = stores.open()
    store.apply(DeclareVhost("/"))
    store.apply(DeclareQueue(Q))
    store.apply(DeclareQueue(Q2))
    for seq in (1, 2, 3):
        store.add_message("/", "work", seq, message(seq))
        store.add_message("/", "audit", seq, message(10 + seq))
    store.remove_message("/", "audit", 2)
    _, snapshot = await stores.reopen()
    assert stored(snapshot, "work") == [(1, b"body 1"), (2, b"body 2"), (3, b"body 3")]
    assert stored(snapshot, "audit") == [(1, b"body 11"), (3, b"body 13")]


async def test_remove_purge_and_replace(stores: Stores) -> None:
    store, _ = stores.open()
    store.apply(DeclareVhost("/"))
    store.apply(DeclareQueue(Q))
    store.apply(DeclareQueue(Q2))
    for seq in range(1, 7):
        store.add_message("/", "work", seq, message(seq))
        store.add_message("/", "audit", seq, message(seq))
    store, _ = await stores.reopen()  # the rows are on disk now
    store.apply(RemoveMessages("/", "work", (2, 3, 5)))
    store.apply(AddMessage("/", "work", 4, message(4, b"replaced")))
    store.apply(Purge("/", "audit"))
    store.add_message("/", "audit", 7, message(7))
    _, snapshot = await stores.reopen()
    assert stored(snapshot, "work") == [(1, b"body 1"), (4, b"replaced"), (6, b"body 6")]
    assert stored(snapshot, "audit") == [(7, b"body 7")]


async def test_index_only_load_gives_numbers_and_sizes(stores: Stores) -> None:
    store, _ = stores.open()
    store.apply(DeclareVhost("/"))
    store.apply(DeclareQueue(Q))
    for seq in (3, 1, 2):
        store.add_message("/", "work", seq, message(seq, b"x" * seq))
    _, snapshot = await stores.reopen(messages=False)
    assert snapshot.messages == {}
    seqs, sizes = snapshot.message_seqs[("/", "work")]
    assert seqs.tolist() == [1, 2, 3]
    assert len(sizes) == 3 and sum(sizes) > 0


async def test_reads_in_the_order_asked_before_and_after_commit(stores: Stores) -> None:
    store, _ = stores.open()
    store.apply(DeclareVhost("/"))
    store.apply(DeclareQueue(Q))
    for seq in range(1, 5):
        store.add_message("/", "work", seq, message(seq))

    def bodies(found: list[tuple[int, Message]]) -> list[tuple[int, bytes]]:
        return [(seq, m.body) for seq, m in found]

    want = [(4, b"body 4"), (1, b"body 1"), (3, b"body 3")]
    assert bodies(store.read_messages("/", "work", [4, 1, 9, 3])) == want  # 9: not there
    await synced(store)
    assert bodies(store.read_messages("/", "work", [4, 1, 9, 3])) == want
    store, _ = await stores.reopen(messages=False)
    assert bodies(store.read_messages("/", "work", [4, 1, 9, 3])) == want
    assert store.read_messages("/", "other", [1]) == []


async def fetched(store: Store, queue: str, seqs: list[int]) -> list[tuple[int, bytes]]:
    """``fetch_messages``, awaited; its callback must run on the loop's thread."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[tuple[int, bytes]]] = loop.create_future()
    loop_thread = threading.get_ident()

    def done(found: list[tuple[int, Message]]) -> None:
        assert threading.get_ident() == loop_thread
        answer.set_result([(seq, m.body) for seq, m in found])

    store.fetch_messages("/", queue, seqs, done)
    return await asyncio.wait_for(answer, 30)


async def test_fetches_answer_on_the_loop_what_reads_answer(stores: Stores) -> None:
    store, _ = stores.open()
    store.apply(DeclareVhost("/"))
    store.apply(DeclareQueue(Q))
    for seq in range(1, 4):
        store.add_message("/", "work", seq, message(seq))
    await synced(store)
    store.add_message("/", "work", 4, message(4))  # not committed yet: seen all the same
    want = [(4, b"body 4"), (1, b"body 1"), (3, b"body 3")]
    assert await fetched(store, "work", [4, 1, 9, 3]) == want
    store, _ = await stores.reopen(messages=False)
    assert await fetched(store, "work", [4, 2, 3]) == [
        (4, b"body 4"),
        (2, b"body 2"),
        (3, b"body 3"),
    ]
    assert await fetched(store, "other", [1]) == []


async def test_documents_last_write_wins(stores: Stores) -> None:
    store, _ = stores.open()
    store.save_document("users", "u", {"v": 1})
    store.save_document("users", "u", {"v": 2})
    store.save_document("limits", "/", {"max-queues": 3})
    store.delete_document("limits", "/")
    store.delete_document("limits", "never-saved")
    _, snapshot = await stores.reopen()
    assert snapshot.documents.get("users") == {"u": {"v": 2}}
    assert not snapshot.documents.get("limits")


async def test_documents_keep_nested_values(stores: Stores) -> None:
    """The shape of an MQTT session's document (packet ids and subscriptions)."""
    store, _ = stores.open()
    value = {
        "release": [1, 7, 65535],
        "complete": [],
        "expiry": 3600,
        "shared": {"$share/g/a/+": {"x-mqtt-qos": 1, "x-mqtt-no-local": False}},
    }
    store.save_document("mqtt-session", '["/", "client"]', value)
    store.save_document("mqtt-session", '["/", "gone"]', {"release": [2]})
    store.delete_document("mqtt-session", '["/", "gone"]')
    _, snapshot = await stores.reopen()
    assert snapshot.documents.get("mqtt-session") == {'["/", "client"]': value}


# -- positions -------------------------------------------------------------------------


async def test_positions_grow_and_durable_catches_up_at_sync(stores: Stores) -> None:
    store, _ = stores.open()
    start = store.written
    assert store.durable <= store.written
    store.apply(DeclareVhost("/"))
    store.add_message("/", "q", 1, message(1))
    store.remove_message("/", "q", 1)  # cancels the add, and still counts as a write
    store.save_document("users", "u", 1)
    position = store.written
    assert position >= start + 4
    reached: list[int] = []
    store.sync(lambda: reached.append(store.durable))
    await synced(store)
    assert reached and reached[0] >= position
    assert store.durable == store.written == position
    assert store.queued_writes == 0


# -- a node over the store -------------------------------------------------------------


def publish(node: Node, queue: str, body: bytes) -> None:
    vhost = node.vhost("/")
    props = Properties(durable=True)
    vhost.publish(Message("", queue, props, body), vhost.exchange(""))


async def test_node_numbers_each_queue_and_recovery_continues_above(stores: Stores) -> None:
    store, snapshot = stores.open()
    loop = asyncio.get_running_loop()
    node = Node(loop, store=store, vocabulary=RABBITMQ)
    node.restore(snapshot)
    vhost = node.add_vhost("/")
    for name in ("a", "b"):
        vhost.declare_queue(name, owner=None, durable=True)
    for body in (b"a1", b"a2", b"a3"):
        publish(node, "a", body)
    publish(node, "b", b"b1")
    store, snapshot = await stores.reopen()
    assert stored(snapshot, "a") == [(1, b"a1"), (2, b"a2"), (3, b"a3")]
    assert stored(snapshot, "b") == [(1, b"b1")]

    node = Node(loop, store=store, vocabulary=RABBITMQ)
    assert node.restore(snapshot) == 4
    publish(node, "a", b"a4")
    publish(node, "b", b"b2")
    recovered = node.vhost("/").queue("a").get(no_ack=True)
    assert recovered is not None and recovered.redelivered and recovered.message.body == b"a1"
    _, snapshot = await stores.reopen()
    assert stored(snapshot, "a") == [(2, b"a2"), (3, b"a3"), (4, b"a4")]
    assert stored(snapshot, "b") == [(1, b"b1"), (2, b"b2")]


async def test_commands_from_elsewhere_change_the_node(stores: Stores) -> None:
    store, _ = stores.open()
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    changes: list[Command] = [
        DeclareVhost("/"),
        DeclareExchange(EX),
        DeclareQueue(Q2),
        Bind(B2),
        AddMessage("/", "audit", 7, message(7)),
        AddMessage("/", "audit", 8, message(8)),
        AddMessage("/", "audit", 9, message(9)),
        RemoveMessages("/", "audit", (8,)),
    ]
    assert all(replay.apply(node, command) for command in changes)
    vhost = node.vhost("/")
    queue = vhost.queue("audit")
    assert [e.message.body for e in queue.ready] == [b"body 7", b"body 9"]
    reached = vhost.route(vhost.exchange("orders"), "anything", None)
    assert [q.name for q in reached] == ["audit"]
    # A message published here is numbered after those that came from elsewhere.
    publish(node, "audit", b"local")
    assert [e.seq for e in queue.ready] == [7, 9, 10]
    assert replay.apply(node, Purge("/", "audit"))
    assert queue.message_count == 0
    assert replay.apply(node, DeleteQueue("/", "audit"))
    assert "audit" not in vhost.queues
    assert not replay.apply(node, AddMessage("/", "audit", 1, message(1)))  # no such queue


async def test_replayed_definitions_are_not_written_back(stores: Stores) -> None:
    store, _ = stores.open()
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    before = store.written
    for command in (DeclareVhost("/"), DeclareExchange(EX), DeclareQueue(Q), Bind(B)):
        assert replay.apply(node, command)
    assert store.written == before


async def test_replayed_removals_are_not_written_back(stores: Stores) -> None:
    # A removal that came from a log (another node's, or a replicated store's) is in
    # that log already: applying it, cascades included, writes nothing here.
    store, _ = stores.open()
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    auto = ExchangeRecord("/", "fan", "fanout", True, True, False, {})
    to_auto = BindingRecord("/", "fan", "audit", "queue", "", {})
    setup: list[Command] = [
        DeclareVhost("/"),
        DeclareVhost("other"),
        DeclareExchange(EX),
        DeclareExchange(auto),
        DeclareQueue(Q),
        DeclareQueue(Q2),
        DeclareQueue(QueueRecord("other", "q", True, False, {})),
        Bind(B),
        Bind(B2),
        Bind(to_auto),
        AddMessage("/", "work", 1, message(1)),
        AddMessage("/", "audit", 1, message(1)),
        AddMessage("other", "q", 1, message(1)),
    ]
    for command in setup:  # as a node that recovers: in the store, then applied
        store.apply(command)
        assert replay.apply(node, command)
    before = store.written
    vhost = node.vhost("/")
    assert replay.apply(node, Unbind(B))
    assert replay.apply(node, Purge("/", "work"))
    assert vhost.queue("work").message_count == 0
    assert replay.apply(node, DeleteQueue("/", "audit"))  # and the auto-delete exchange
    assert "audit" not in vhost.queues and "fan" not in vhost.exchanges
    assert replay.apply(node, DeleteExchange("/", "orders"))
    assert "orders" not in vhost.exchanges
    assert replay.apply(node, DeleteVhost("other"))
    assert "other" not in node.vhosts
    assert store.written == before
    # What the store holds is untouched: it is the log's to change.
    _, snapshot = await stores.reopen()
    assert definitions(snapshot) == sorted(
        (c for c in setup if not isinstance(c, AddMessage)), key=repr
    )
    assert stored(snapshot, "work") == stored(snapshot, "audit") == [(1, b"body 1")]
    assert stored(snapshot, "q", vhost="other") == [(1, b"body 1")]


class Recorder(Consumer):
    """A consumer without a prefetch limit that records what it was given."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.received: list[Entry] = []

    def can_deliver(self) -> bool:
        return True

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.received.append(entry)

    def cancelled_by_broker(self) -> None:
        pass


async def test_recovery_reads_messages_back_while_consumers_attach(stores: Stores) -> None:
    store, snapshot = stores.open()
    loop = asyncio.get_running_loop()
    node = Node(loop, store=store, vocabulary=RABBITMQ)
    node.restore(snapshot)
    node.add_vhost("/").declare_queue("a", owner=None, durable=True)
    for body in (b"1", b"2", b"3"):
        publish(node, "a", body)
    store, _ = await stores.reopen()
    store.close()
    # As the broker starts: definitions and each queue's highest number first...
    store, snapshot = stores.open(messages=False, index=False)
    assert snapshot.message_seqs == {} and snapshot.last_seqs == {("/", "a"): 3}
    node = Node(loop, store=store, vocabulary=RABBITMQ)
    node.restore(snapshot)
    queue = node.vhost("/").queue("a")
    consumer = Recorder()
    queue.add_consumer(consumer)  # attaches before the stored messages are back
    publish(node, "a", b"new")
    assert consumer.received == [] and queue.get(no_ack=True) is None
    # ...then the stored ones, read off the loop: they come first, marked redelivered.
    index: asyncio.Future[MessageIndex] = loop.create_future()
    store.fetch_index(index.set_result)
    assert node.restore_index(await index) == 3
    got = [(e.seq, e.message.body, e.redelivered) for e in consumer.received]
    assert got == [(1, b"1", True), (2, b"2", True), (3, b"3", True), (4, b"new", False)]


async def test_a_queue_purged_while_recovering_gets_nothing_back(stores: Stores) -> None:
    store, snapshot = stores.open()
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    node.restore(snapshot)
    node.add_vhost("/").declare_queue("a", owner=None, durable=True)
    publish(node, "a", b"old")
    store, _ = await stores.reopen()
    store.close()
    store, snapshot = stores.open(messages=False, index=False)
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    node.restore(snapshot)
    queue = node.vhost("/").queue("a")
    publish(node, "a", b"new")
    assert queue.purge() == 1
    index: asyncio.Future[MessageIndex] = asyncio.get_running_loop().create_future()
    store.fetch_index(index.set_result)
    node.restore_index(await index)
    assert queue.message_count == 0
    _, snapshot = await stores.reopen()
    assert stored(snapshot, "a") == []


# -- retained messages (MQTT) ----------------------------------------------------------


def retained(snapshot: Snapshot) -> dict[tuple[str, str], tuple[bytes, float | None]]:
    return {(c.vhost, c.topic): (c.message.body, c.expires) for c in snapshot.retained}


async def test_retained_messages_round_trip_and_are_forgotten(stores: Stores) -> None:
    store, _ = stores.open()
    store.apply(DeclareVhost("/"))
    store.apply(DeclareVhost("other"))
    lamp = message(1, b"on", headers=(("room", "hall"),), content_type="text/plain")
    store.apply(RetainMessage("/", "home/lamp", lamp, None))
    store.apply(RetainMessage("/", "home/door", message(2, b"shut"), 1_900_000_000.25))
    store.retain_message("other", "$SYS/x", message(3, b"sys"), None)
    store.retain_message("/", "a//b", message(4, b"old"), None)
    store.retain_message("/", "a//b", message(5, b"new"), None)  # replaces
    _, snapshot = await stores.reopen()
    assert retained(snapshot) == {
        ("/", "home/lamp"): (b"on", None),
        ("/", "home/door"): (b"shut", 1_900_000_000.25),
        ("other", "$SYS/x"): (b"sys", None),
        ("/", "a//b"): (b"new", None),
    }
    [got] = [c for c in snapshot.retained if c.topic == "home/lamp"]
    assert same(got.message, lamp)
    # Retained messages come back right after their vhost, before anything else.
    kinds = [type(c).__name__ for c in snapshot.commands()]
    assert kinds[:6] == ["DeclareVhost"] * 2 + ["RetainMessage"] * 4
    store = stores.current
    assert store is not None
    store.apply(ForgetRetained("/", "home/door"))
    store.forget_retained("/", "never/there")
    store.apply(DeleteVhost("other"))
    _, snapshot = await stores.reopen()
    assert set(retained(snapshot)) == {("/", "home/lamp"), ("/", "a//b")}


async def test_retained_last_write_in_a_batch_wins(stores: Stores) -> None:
    store, _ = stores.open()
    store.save_vhost("/")
    for n in range(5):
        store.retain_message("/", "sensor", message(n, f"{n}".encode()), None)
    store.forget_retained("/", "gone")
    store.retain_message("/", "gone", message(9, b"back"), None)
    store.retain_message("/", "cleared", message(8, b"x"), None)
    store.forget_retained("/", "cleared")
    _, snapshot = await stores.reopen()
    assert retained(snapshot) == {("/", "sensor"): (b"4", None), ("/", "gone"): (b"back", None)}


async def test_a_node_restores_retained_messages_and_keeps_them(stores: Stores) -> None:
    store, _ = stores.open()
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    vhost = node.add_vhost("/")
    vhost.retained.retain("home/lamp", Message("amq.topic", "home.lamp", Properties(), b"on"))
    expiring = Message("amq.topic", "t", Properties(ttl=3_600_000), b"soon")
    vhost.retained.retain("home/clock", expiring)
    vhost.retained.retain("home/old", Message("amq.topic", "home.old", Properties(), b"x"))
    vhost.retained.retain("home/old", Message("amq.topic", "home.old", Properties(), b""))
    _, snapshot = await stores.reopen()
    again = Node(asyncio.get_running_loop(), store=stores.current, vocabulary=RABBITMQ)
    again.restore(snapshot)
    found = {t: m for t, m in again.vhost("/").retained.match("home/#")}
    assert {t: m.body for t, m in found.items()} == {"home/lamp": b"on", "home/clock": b"soon"}
    left = found["home/clock"].expires_at
    assert left is not None and 3590 < left - asyncio.get_running_loop().time() <= 3600
    before = stores.current.written if stores.current is not None else 0
    again.restore(snapshot)  # replayed again: nothing written
    assert stores.current is not None and stores.current.written == before
    assert not replay.apply(again, RetainMessage("nowhere", "t", message(1), None))
    assert replay.apply(again, ForgetRetained("/", "home/lamp"))
    assert again.vhost("/").retained.match("home/lamp") == []
