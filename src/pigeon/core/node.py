"""The broker's protocol-neutral state: its virtual hosts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pigeon.core import replay
from pigeon.core.commands import AddMessage
from pigeon.core.entry import QueueStats
from pigeon.core.message import MessageSizes
from pigeon.core.options import NEUTRAL, Vocabulary
from pigeon.core.parameters import Parameters
from pigeon.core.ports import DeliveryObserver, MessageIndex, Scheduler, Snapshot, Store
from pigeon.core.queue import Queue
from pigeon.core.queue_types import QueueFactory
from pigeon.core.retained import DEFAULT_LIMIT
from pigeon.core.routing import VhostStats
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotFound, PreconditionFailed

log = logging.getLogger("pigeon.node")


@dataclass(slots=True)
class NodeStats:
    """Node-wide counters, incremented where each event happens (read by ``/metrics``)."""

    connections_opened: int = 0
    connections_closed: int = 0
    channels_opened: int = 0
    channels_closed: int = 0
    queues_declared: int = 0  # every queue.declare but a passive one, as RabbitMQ's
    queues_created: int = 0
    queues_deleted: int = 0
    # The counts of deleted queues, so that node-wide totals never go back.
    deleted_queues: QueueStats = field(default_factory=QueueStats)
    deleted_vhosts: VhostStats = field(default_factory=VhostStats)
    # Sizes of message bodies received from publishers (rabbitmq_message_size_bytes).
    message_sizes: MessageSizes = field(default_factory=MessageSizes)
    # Counts a protocol keeps apart from the node-wide ones, by the protocol's name as its
    # sessions describe it ("MQTT 5.0"): closed sessions' message counts, connections.
    by_protocol: dict[str, dict[str, int]] = field(default_factory=dict)

    def protocol(self, name: str) -> dict[str, int]:
        found = self.by_protocol.get(name)
        if found is None:
            found = self.by_protocol[name] = {}
        return found


class Node:
    def __init__(
        self,
        scheduler: Scheduler,
        name: str = "pigeon@localhost",
        store: Store | None = None,
        *,
        vocabulary: Vocabulary = NEUTRAL,
    ) -> None:
        """``vocabulary``: how clients' argument tables and policies read; the
        composition root passes RabbitMQ's (``pigeon.operations.arguments``)."""
        self.name = name
        self.vocabulary = vocabulary
        self.scheduler = scheduler
        self.store = store
        self.vhosts: dict[str, VirtualHost] = {}
        # Topics with a retained message a vhost made from now on may hold (None: no
        # limit); a vhost's own is ``vhost.retained.limit``.
        self.retained_limit: int | None = DEFAULT_LIMIT
        self.stats = NodeStats()
        self.started = scheduler.time()  # for the uptime
        self.parameters = Parameters(store, name)
        # Shared by every vhost and queue: observers added later see all queues.
        self.observers: list[DeliveryObserver] = []
        # Called after any change of messages, consumers or topology in any vhost, on the
        # loop's thread (the embedded API's wait_for re-checks on it). Empty in a server.
        self.watchers: list[Callable[[], object]] = []
        # Queues whose stored messages are being read back (restore, then restore_index).
        self._recovering: dict[tuple[str, str], Queue] = {}
        # Called with a vhost's name after it was deleted (protocols close its connections).
        self.vhost_deleted: list[Callable[[str], object]] = []
        # Cluster mode: where durable queues live (core.queue_types.QueueFactory).
        self.queue_factory: QueueFactory | None = None

    def add_vhost(self, name: str) -> VirtualHost:
        if name in self.vhosts:
            raise PreconditionFailed(f"vhost '{name}' already exists")
        vhost = self._new_vhost(name)
        self.vhosts[name] = vhost
        if self.store is not None:
            self.store.save_vhost(name)
        return vhost

    def _new_vhost(self, name: str) -> VirtualHost:
        vhost = VirtualHost(
            name,
            self.scheduler,
            self.observers,
            self.store,
            self.watchers,
            self.stats,
            vocabulary=self.vocabulary,
            retained_limit=self.retained_limit,
        )
        vhost.queue_factory = self.queue_factory
        return vhost

    def vhost(self, name: str) -> VirtualHost:
        try:
            return self.vhosts[name]
        except KeyError:
            raise NotFound(f"no vhost '{name}'") from None

    def delete_vhost(self, name: str, *, record: bool = True) -> None:
        """Delete a vhost and all in it. Not ``record``: a deletion replayed from a log,
        which the store is not told of again (nor of its cascades)."""
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            raise NotFound(f"no vhost '{name}'")
        for queue in list(vhost.queues.values()):
            vhost.remove_queue(queue, record=record)
        self.stats.deleted_vhosts.add(vhost.stats)
        for exchange in list(vhost.exchanges.values()):
            vhost.remove_exchange(exchange, record=record)
        if record:
            vhost.policies.forget()  # (only the store's copies: the vhost is gone)
        self.parameters.forget_vhost(name, record=record)
        if record and self.store is not None:
            self.store.delete_vhost(name)
        for callback in self.vhost_deleted:
            callback(name)

    def close(self) -> None:
        """The broker stops: cancel every queue's timers so nothing fires later."""
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                queue.stop_timers()

    def _find_queue(self, vhost: str, name: str) -> Queue | None:
        host = self.vhosts.get(vhost)
        return host.queues.get(name) if host is not None else None

    def restore_vhost(self, name: str) -> VirtualHost:
        """The vhost, made without writing it to the store if it is not there yet."""
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = self._new_vhost(name)
        return vhost

    def restore(self, snapshot: Snapshot) -> int:
        """Rebuild durable state from a store's snapshot (a replay of its commands);
        returns the messages restored."""
        restored = 0
        for command in snapshot.commands():
            if replay.apply(self, command) and isinstance(command, AddMessage):
                restored += 1
        for (vhost_name, queue_name), last in snapshot.last_seqs.items():
            queue = self._find_queue(vhost_name, queue_name)
            if queue is not None:
                queue.begin_recovery(last)
                self._recovering[(vhost_name, queue_name)] = queue
        return restored + self._restore_numbers(snapshot.message_seqs)

    def restore_index(self, index: MessageIndex) -> int:
        """The store's ``fetch_index`` (after ``load(index=False)``) answered: the stored
        messages go back in front of their queues; returns how many."""
        restored = self._restore_numbers(index)
        recovering, self._recovering = self._recovering, {}
        for queue in recovering.values():  # none of theirs could be read (damaged)
            queue.finish_recovery([], 0)
        return restored

    def _restore_numbers(self, index: MessageIndex) -> int:
        restored = 0
        for (vhost_name, queue_name), (seqs, sizes) in index.items():
            queue = self._find_queue(vhost_name, queue_name)
            recovering = self._recovering.get((vhost_name, queue_name))
            if recovering is not None:
                # Deleted meanwhile (and perhaps declared again): those went with it.
                if recovering is queue and queue.recovering:
                    queue.finish_recovery(seqs.tolist(), sum(sizes))
                    restored += len(seqs)
            elif queue is not None:
                queue.restore_index(seqs.tolist(), sum(sizes))
                restored += len(seqs)
            elif self.store is not None:
                # Messages whose queue record was lost (damage): forget them, or they would
                # turn up in a new queue of the same name at the next start.
                log.warning(
                    "dropping %d stored messages of unknown queue %r in vhost %r",
                    len(seqs),
                    queue_name,
                    vhost_name,
                )
                self.store.delete_queue(vhost_name, queue_name)
        return restored
