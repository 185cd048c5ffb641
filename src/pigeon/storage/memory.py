"""The store in memory: for embedded brokers and tests that need no disk.

It keeps what it is told for as long as the process (or whoever holds its
:class:`MemoryState`) lives: a broker restarted in the same process over the
same state recovers like one over a data folder. :meth:`sync` completes at once
and nothing is paged out (a broker without a data folder keeps every message in
memory). It is also the reference the store contract tests hold SQLite to.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pigeon.core.commands import RetainMessage
from pigeon.core.message import Message
from pigeon.core.ports import (
    BindingRecord,
    ExchangeRecord,
    MessageIndex,
    Pager,
    QueueRecord,
    Snapshot,
    StoredMessage,
)
from pigeon.storage.applying import AppliesCommands

QueueKey = tuple[str, str]


@dataclass
class MemoryState:
    """What a :class:`MemoryStore` keeps; hand it to a new store to "reopen" it."""

    vhosts: dict[str, None] = field(default_factory=dict)
    exchanges: dict[QueueKey, ExchangeRecord] = field(default_factory=dict)
    queues: dict[QueueKey, QueueRecord] = field(default_factory=dict)
    bindings: list[BindingRecord] = field(default_factory=list)
    messages: dict[QueueKey, dict[int, Message]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    retained: dict[QueueKey, RetainMessage] = field(default_factory=dict)  # (vhost, topic)


class MemoryStore(AppliesCommands):
    keeps_messages = True
    # Nothing is paged out: a broker without a data folder keeps every message in memory.
    pager: Pager | None = None

    def __init__(self, state: MemoryState | None = None) -> None:
        self.state = MemoryState() if state is None else state
        # Every write counts; each is "on disk" at once (there is no disk to wait for).
        self.written = 0
        self._last_seqs: dict[QueueKey, int] = {}  # see fetch_index

    @property
    def durable(self) -> int:
        return self.written

    queued_writes = 0
    commit_latency = 0.0

    def load(self, *, messages: bool = True, index: bool = True) -> Snapshot:
        state = self.state
        snapshot = Snapshot(
            vhosts=list(state.vhosts),
            exchanges=list(state.exchanges.values()),
            queues=list(state.queues.values()),
            bindings=list(state.bindings),
            documents={kind: dict(found) for kind, found in state.documents.items() if found},
            retained=list(state.retained.values()),
        )
        for key, stored in state.messages.items():
            seqs = sorted(stored)
            if not seqs:
                continue
            if messages:
                snapshot.messages[key] = [StoredMessage(seq, stored[seq]) for seq in seqs]
            elif index:
                snapshot.message_seqs[key] = self._index(key, seqs[-1])
            else:
                snapshot.last_seqs[key] = seqs[-1]
        self._last_seqs = snapshot.last_seqs
        return snapshot

    def _index(self, key: QueueKey, upto: int) -> tuple[array[int], array[int]]:
        stored = self.state.messages.get(key, {})
        seqs = sorted(seq for seq in stored if seq <= upto)
        return array("q", seqs), array("q", (len(stored[seq].body) for seq in seqs))

    def fetch_index(self, done: Callable[[MessageIndex], object]) -> None:
        """Completes at once: the messages are in memory."""
        done({key: self._index(key, last) for key, last in self._last_seqs.items()})

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        stored = self.state.messages.get((vhost, queue), {})
        return [(seq, stored[seq]) for seq in seqs if seq in stored]

    def fetch_messages(
        self,
        vhost: str,
        queue: str,
        seqs: list[int],
        done: Callable[[list[tuple[int, Message]]], object],
    ) -> None:
        """Completes at once: the messages are in memory."""
        done(self.read_messages(vhost, queue, seqs))

    # -- definitions -------------------------------------------------------------------

    def save_vhost(self, name: str) -> None:
        self.written += 1
        self.state.vhosts[name] = None

    def delete_vhost(self, name: str) -> None:
        self.written += 1
        state = self.state
        state.vhosts.pop(name, None)
        for table in (state.exchanges, state.queues, state.messages, state.retained):
            for key in [key for key in table if key[0] == name]:
                del table[key]
        state.bindings = [b for b in state.bindings if b.vhost != name]

    def save_exchange(self, record: ExchangeRecord) -> None:
        self.written += 1
        self.state.exchanges[(record.vhost, record.name)] = record

    def delete_exchange(self, vhost: str, name: str) -> None:
        self.written += 1
        self.state.exchanges.pop((vhost, name), None)
        self._unbind(
            lambda b: (
                b.vhost == vhost
                and (
                    b.source == name or (b.destination == name and b.destination_kind == "exchange")
                )
            )
        )

    def save_queue(self, record: QueueRecord) -> None:
        self.written += 1
        self.state.queues[(record.vhost, record.name)] = record

    def delete_queue(self, vhost: str, name: str) -> None:
        self.written += 1
        self.state.queues.pop((vhost, name), None)
        self.state.messages.pop((vhost, name), None)
        self._unbind(
            lambda b: b.vhost == vhost and b.destination == name and b.destination_kind == "queue"
        )

    def save_binding(self, record: BindingRecord) -> None:
        self.written += 1
        if record not in self.state.bindings:
            self.state.bindings.append(record)

    def delete_binding(self, record: BindingRecord) -> None:
        self.written += 1
        self._unbind(lambda b: b == record)

    def _unbind(self, gone: Callable[[BindingRecord], bool]) -> None:
        self.state.bindings = [b for b in self.state.bindings if not gone(b)]

    # -- messages ----------------------------------------------------------------------

    def add_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        self.written += 1
        stored = self.state.messages.get((vhost, queue))
        if stored is None:
            stored = self.state.messages[(vhost, queue)] = {}
        stored[seq] = message

    rewrite_message = add_message

    def remove_message(self, vhost: str, queue: str, seq: int) -> None:
        self.written += 1
        stored = self.state.messages.get((vhost, queue))
        if stored is not None:
            stored.pop(seq, None)

    def purge(self, vhost: str, queue: str) -> None:
        self.written += 1
        self.state.messages.pop((vhost, queue), None)

    # -- documents and the rest --------------------------------------------------------

    def save_document(self, kind: str, key: str, value: Any) -> None:
        self.written += 1
        self.state.documents.setdefault(kind, {})[key] = value

    def delete_document(self, kind: str, key: str) -> None:
        self.written += 1
        self.state.documents.get(kind, {}).pop(key, None)

    # -- retained messages -------------------------------------------------------------

    def retain_message(
        self, vhost: str, topic: str, message: Message, expires: float | None
    ) -> None:
        self.written += 1
        self.state.retained[(vhost, topic)] = RetainMessage(vhost, topic, message, expires)

    def forget_retained(self, vhost: str, topic: str) -> None:
        self.written += 1
        self.state.retained.pop((vhost, topic), None)

    def sync(self, callback: Callable[[], object]) -> None:
        callback()

    def close(self) -> None:
        pass
