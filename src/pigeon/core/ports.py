"""Interfaces the core needs from the outside world (ports, in the hexagonal sense).

The core never imports asyncio or a storage engine; the composition root
(``pigeon.broker``) hands it objects that satisfy these protocols.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from pigeon.core.commands import (
    AddMessage,
    Bind,
    BindingRecord,
    Command,
    DeclareExchange,
    DeclareQueue,
    DeclareVhost,
    ExchangeRecord,
    QueueRecord,
    RetainMessage,
    SaveDocument,
)
from pigeon.core.message import Message

# (vhost, queue) -> (numbers ascending, stored body sizes)
MessageIndex: TypeAlias = "dict[tuple[str, str], tuple[array[int], array[int]]]"

__all__ = [
    "BindingRecord",
    "DeliveryObserver",
    "ExchangeRecord",
    "MessageIndex",
    "Pager",
    "QueueRecord",
    "Scheduler",
    "Snapshot",
    "Store",
    "StoredMessage",
    "TimerHandle",
]

if TYPE_CHECKING:
    from pigeon.core.paging import MemoryBudget
    from pigeon.core.queue import Entry, Queue


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Time and timers. ``asyncio.AbstractEventLoop`` satisfies it as it is."""

    def time(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...

    def call_soon(self, callback: Callable[[], object]) -> TimerHandle: ...


class DeliveryObserver(Protocol):
    """Told of each delivery and acknowledgement (latency metrics); must be cheap."""

    def delivered(self, queue: Queue, entry: Entry) -> None: ...

    def acked(self, queue: Queue, entry: Entry) -> None: ...


# -- storage -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A persistent message of a durable queue, as recovered at start."""

    seq: int
    message: Message


@dataclass
class Snapshot:
    """Everything a store recovered, in the order it must be restored."""

    vhosts: list[str] = field(default_factory=list)
    exchanges: list[ExchangeRecord] = field(default_factory=list)
    queues: list[QueueRecord] = field(default_factory=list)
    bindings: list[BindingRecord] = field(default_factory=list)
    # (vhost, queue) -> messages in queue order (ascending seq)
    messages: dict[tuple[str, str], list[StoredMessage]] = field(default_factory=dict)
    # With load(messages=False): (vhost, queue) -> (seqs ascending, stored body sizes);
    # the messages themselves are read back with Store.read_messages when needed.
    message_seqs: dict[tuple[str, str], tuple[array[int], array[int]]] = field(default_factory=dict)
    # With load(messages=False, index=False): (vhost, queue) -> its highest stored number;
    # the numbers themselves come later, from Store.fetch_index.
    last_seqs: dict[tuple[str, str], int] = field(default_factory=dict)
    # Free-form records other layers keep (users, permissions): kind -> key -> value.
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Retained messages (MQTT) of every vhost, as the commands that keep them.
    retained: list[RetainMessage] = field(default_factory=list)

    def commands(self) -> Iterator[Command]:
        """What the snapshot holds, as the commands that rebuild it, in the order they
        apply (the messages of ``message_seqs`` are not among them: only numbers)."""
        yield from map(DeclareVhost, self.vhosts)
        yield from self.retained
        for kind, documents in self.documents.items():
            for key, value in documents.items():
                yield SaveDocument(kind, key, value)
        yield from map(DeclareExchange, self.exchanges)
        yield from map(DeclareQueue, self.queues)
        yield from map(Bind, self.bindings)
        for (vhost, queue), stored in self.messages.items():
            for item in stored:
                yield AddMessage(vhost, queue, item.seq, item.message)


class Pager(Protocol):
    """Where messages that are not in the store wait while a queue pages out a backlog.

    Nothing here is durable: writes are never synced, never move the store's write
    positions, and are gone after a restart. ``queue`` is a key the queue picks (one
    per priority level); within one key, sequence numbers are written in ascending order.
    """

    # The bodies that ready messages of all queues hold in memory, and the budget for them.
    memory: MemoryBudget

    @property
    def backlog(self) -> int:
        """Messages handed to :meth:`write` and not written yet."""
        ...

    def write(
        self,
        vhost: str,
        queue: str,
        items: list[tuple[int, Message]],
        done: Callable[[bool], object],
    ) -> None:
        """Write (seq, message) pairs; ``done(written)`` runs on the loop afterwards."""
        ...

    def read(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        """Written messages by ascending sequence number, in that order; synchronous."""
        ...

    def fetch(
        self,
        vhost: str,
        queue: str,
        seqs: list[int],
        done: Callable[[list[tuple[int, Message]]], object],
    ) -> None:
        """:meth:`read` off the loop: ``done(found)`` runs on the loop later (or at once).
        It sees every write handed to :meth:`write` before it was asked."""
        ...

    def discard(self, vhost: str, queue: str, upto: int) -> None: ...

    def drop(self, vhost: str, queue: str) -> None: ...

    def when_written(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the writes handed over so far are done (flow control)."""
        ...


class Store(Protocol):
    """Where durable definitions and persistent messages are kept.

    Every method is called on the event loop thread and must not block: a
    store queues the work and does it elsewhere (a writer thread). Writes are
    applied in call order. :meth:`sync` is the durability barrier: its
    callback runs, on the loop thread, once everything written before the
    call is on disk (fsynced), or at once for a store that keeps nothing.
    """

    @property
    def keeps_messages(self) -> bool:
        """Whether messages written here can be read back (so paged out of memory)."""
        ...

    @property
    def pager(self) -> Pager | None:
        """Where other messages of a long backlog are paged out (None: kept in memory)."""
        ...

    def load(self, *, messages: bool = True, index: bool = True) -> Snapshot:
        """Read what was stored; called once, before the broker serves. Without
        ``messages`` only their sequence numbers are returned (``message_seqs``);
        without ``index`` either, only each queue's highest one (``last_seqs``), and
        the numbers are read with :meth:`fetch_index`."""
        ...

    def fetch_index(self, done: Callable[[MessageIndex], object]) -> None:
        """The numbers and stored sizes of the messages of every queue, as ``message_seqs``
        of a snapshot, read off the loop; ``done`` runs on the loop thread (at once
        where that costs nothing). Called once, after ``load(index=False)``; numbers
        above ``last_seqs`` (messages stored since) are left out."""
        ...

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        """Stored messages of a queue by sequence number, in the order asked; ones the
        store does not have are left out. Synchronous: a few indexed reads."""
        ...

    def fetch_messages(
        self,
        vhost: str,
        queue: str,
        seqs: list[int],
        done: Callable[[list[tuple[int, Message]]], object],
    ) -> None:
        """:meth:`read_messages` without blocking the loop: ``done(found)`` runs on the
        loop thread once the messages are read (a fetch from a replicated log; SQLite's
        reader thread), or before this returns when that costs nothing (in memory).
        Messages added before the call are found (the core never asks for removed ones)."""
        ...

    def apply(self, command: Command) -> None:
        """Record one durable state change (:mod:`pigeon.core.commands`), in call order.

        The named methods below are the same commands spelled as calls (the hot path's
        ``add_message``/``remove_message`` build no object)."""
        ...

    def save_vhost(self, name: str) -> None: ...

    def delete_vhost(self, name: str) -> None: ...

    def save_exchange(self, record: ExchangeRecord) -> None: ...

    def delete_exchange(self, vhost: str, name: str) -> None: ...

    def save_queue(self, record: QueueRecord) -> None: ...

    def delete_queue(self, vhost: str, name: str) -> None:
        """Forget the queue, its bindings and its messages."""
        ...

    def save_binding(self, record: BindingRecord) -> None: ...

    def delete_binding(self, record: BindingRecord) -> None: ...

    def add_message(self, vhost: str, queue: str, seq: int, message: Message) -> None: ...

    def rewrite_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        """Replace the stored copy of a message that is still stored (same ``seq``)."""
        ...

    def remove_message(self, vhost: str, queue: str, seq: int) -> None: ...

    def purge(self, vhost: str, queue: str) -> None: ...

    def save_document(self, kind: str, key: str, value: Any) -> None: ...

    def delete_document(self, kind: str, key: str) -> None: ...

    def retain_message(
        self, vhost: str, topic: str, message: Message, expires: float | None
    ) -> None:
        """Keep the topic's retained message (replacing it); ``expires``: wall-clock
        seconds since the epoch, or None."""
        ...

    def forget_retained(self, vhost: str, topic: str) -> None: ...

    def sync(self, callback: Callable[[], object]) -> None: ...

    @property
    def written(self) -> int:
        """Position of the last write queued: counts every write, never goes back."""
        ...

    @property
    def durable(self) -> int:
        """Position up to which every write is on disk (``durable == written``: all is).

        Unlike a "dirty" flag that a :meth:`sync` clears for whoever calls it, a
        position cannot be reset by another caller, so comparing the position a reply
        depends on with this one is a fact about the disk.
        """
        ...

    @property
    def queued_writes(self) -> int:
        """Writes not on disk yet: publishers wait while this is large (flow control)."""
        ...

    @property
    def commit_latency(self) -> float:
        """Seconds the last batch of writes took to reach the disk (0 before any)."""
        ...

    def close(self) -> None:
        """Finish queued writes and release the files (clean shutdown)."""
        ...
