"""A persistent session's packet ids and shared subscriptions in the store: written as
they change, read back by a new registry (as at a broker's start), gone with the
session. The in-memory store and a manual clock; the SQLite store's part is the store
contract (tests/storage) and the kill -9 tests (tests/durability/test_mqtt_crash.py)."""

from __future__ import annotations

from pigeon.protocols.mqtt.packets import SubscriptionOptions
from pigeon.protocols.mqtt.sessions import KIND, SessionRegistry
from pigeon.protocols.mqtt.subscriptions import Subscription
from pigeon.storage.memory import MemoryState, MemoryStore
from unit.glue_fakes import ManualClock


def test_packet_ids_come_back_in_a_new_registry() -> None:
    state = MemoryState()
    registry = SessionRegistry(MemoryStore(state))
    session, _ = registry.state("/", "kept", clean=False)
    session.expiry = 60
    session.awaiting_release.add(7)
    session.awaiting_complete.add(9)
    session.shared["$share/g/t"] = Subscription("t", SubscriptionOptions(qos=2), 5)
    session.changed()
    session.flush()
    clock = ManualClock()
    later = SessionRegistry(MemoryStore(state))
    documents = MemoryStore(state).load().documents[KIND]
    assert later.restore(documents, clock) == 1
    back, kept = later.state("/", "kept", clean=False)
    assert kept
    assert (back.awaiting_release, back.awaiting_complete) == ({7}, {9})
    assert back.shared == {"$share/g/t": Subscription("t", SubscriptionOptions(qos=2), 5)}


def test_a_settled_session_has_no_document() -> None:
    state = MemoryState()
    registry = SessionRegistry(MemoryStore(state))
    session, _ = registry.state("/", "settled", clean=False)
    session.expiry = 60
    session.awaiting_release.add(1)
    session.changed()
    session.flush()
    assert MemoryStore(state).load().documents.get(KIND)
    session.awaiting_release.discard(1)
    session.changed()
    session.flush()
    assert not MemoryStore(state).load().documents.get(KIND)


def test_a_clean_session_is_never_written() -> None:
    state = MemoryState()
    registry = SessionRegistry(MemoryStore(state))
    session, _ = registry.state("/", "clean", clean=True)
    session.awaiting_release.add(1)
    session.changed()
    session.flush()
    assert not MemoryStore(state).load().documents.get(KIND)


def test_a_restored_session_is_forgotten_after_its_expiry() -> None:
    state = MemoryState()
    registry = SessionRegistry(MemoryStore(state))
    session, _ = registry.state("/", "expiring", clean=False)
    session.expiry = 30
    session.awaiting_release.add(3)
    session.changed()
    session.flush()
    clock = ManualClock()
    later = SessionRegistry(MemoryStore(state))
    later.restore(MemoryStore(state).load().documents[KIND], clock)
    clock.advance(31)
    assert not MemoryStore(state).load().documents.get(KIND)
    _, kept = later.state("/", "expiring", clean=False)
    assert not kept
