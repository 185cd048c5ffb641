"""The store of a cluster node: the local store (messages, and a copy of the
definitions), plus every durable definition change written to the KV bucket.

Write positions count both: a reply that waits for the store's barrier (declare-ok,
bind-ok, delete-ok) goes out once the local write is on disk *and* the bucket has
acknowledged the definition. ``written``/``durable`` are sums of the two positions:
each part only grows and never passes its own ``written``, so ``durable >= written``
holds exactly when both are caught up, which is the only way they are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pigeon.cluster.definitions import DEFINITIONS
from pigeon.core.commands import (
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
    QueueRecord,
    SaveDocument,
    Unbind,
)
from pigeon.core.message import Message
from pigeon.core.ports import MessageIndex, Pager, Snapshot, Store

if TYPE_CHECKING:
    from pigeon.cluster.sharing import Sharing


class ClusterStore:
    """A :class:`pigeon.core.ports.Store` over the local store and the bucket."""

    def __init__(self, inner: Store, sharing: Sharing) -> None:
        self.inner = inner
        self.sharing = sharing

    # -- definitions: local copy, then the bucket --------------------------------------

    def apply(self, command: Command) -> None:
        self.inner.apply(command)
        if isinstance(command, DEFINITIONS):
            self.sharing.share(command)

    def _both(self, command: Command) -> None:
        self.apply(command)

    def save_vhost(self, name: str) -> None:
        self._both(DeclareVhost(name))

    def delete_vhost(self, name: str) -> None:
        self._both(DeleteVhost(name))

    def save_exchange(self, record: ExchangeRecord) -> None:
        self._both(DeclareExchange(record))

    def delete_exchange(self, vhost: str, name: str) -> None:
        self._both(DeleteExchange(vhost, name))

    def save_queue(self, record: QueueRecord) -> None:
        self._both(DeclareQueue(record))

    def delete_queue(self, vhost: str, name: str) -> None:
        self._both(DeleteQueue(vhost, name))

    def save_binding(self, record: BindingRecord) -> None:
        self._both(Bind(record))

    def delete_binding(self, record: BindingRecord) -> None:
        self._both(Unbind(record))

    def save_document(self, kind: str, key: str, value: Any) -> None:
        self._both(SaveDocument(kind, key, value))

    def delete_document(self, kind: str, key: str) -> None:
        self._both(DeleteDocument(kind, key))

    # -- positions and the barrier -----------------------------------------------------

    @property
    def written(self) -> int:
        return self.inner.written + self.sharing.queued

    @property
    def durable(self) -> int:
        return self.inner.durable + self.sharing.acknowledged

    @property
    def queued_writes(self) -> int:
        return self.inner.queued_writes + (self.sharing.queued - self.sharing.acknowledged)

    def sync(self, callback: Callable[[], object]) -> None:
        target = self.sharing.queued
        self.inner.sync(lambda: self.sharing.when_acknowledged(target, callback))

    # -- messages stay local (docs/cluster.md: "not yet" in JetStream) -----------------

    @property
    def keeps_messages(self) -> bool:
        return self.inner.keeps_messages

    @property
    def pager(self) -> Pager | None:
        return self.inner.pager

    @property
    def commit_latency(self) -> float:
        return self.inner.commit_latency

    def load(self, *, messages: bool = True, index: bool = True) -> Snapshot:
        return self.inner.load(messages=messages, index=index)

    def fetch_index(self, done: Callable[[MessageIndex], object]) -> None:
        self.inner.fetch_index(done)

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        return self.inner.read_messages(vhost, queue, seqs)

    def fetch_messages(
        self,
        vhost: str,
        queue: str,
        seqs: list[int],
        done: Callable[[list[tuple[int, Message]]], object],
    ) -> None:
        self.inner.fetch_messages(vhost, queue, seqs, done)

    def add_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        self.inner.add_message(vhost, queue, seq, message)

    def rewrite_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        self.inner.rewrite_message(vhost, queue, seq, message)

    def remove_message(self, vhost: str, queue: str, seq: int) -> None:
        self.inner.remove_message(vhost, queue, seq)

    def purge(self, vhost: str, queue: str) -> None:
        self.inner.purge(vhost, queue)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # What a local store offers beyond the protocol (``failing``, probes).
        return getattr(self.inner, name)
