"""The bookkeeping under a vhost: who is bound to whom, and removal with cascades.

Deleting a queue or exchange removes every binding that names it; an
auto-delete exchange goes when its last binding as a source goes. Removals are
written to the store unless ``record`` is false (a removal replayed from a log,
:mod:`pigeon.core.replay`: the log has it already, cascades included).
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from pigeon.core.binding import Binding, Destination, DestinationKind
from pigeon.core.exchange import Exchange
from pigeon.core.ports import BindingRecord, ExchangeRecord, QueueRecord, Store
from pigeon.core.queue import Queue


class DeclaredQueue(NamedTuple):
    queue: Queue
    message_count: int
    consumer_count: int


class Topology:
    def __init__(self, name: str, store: Store | None = None) -> None:
        self.name = name
        # Durable definitions go to the store; None keeps everything in memory only.
        self.store = store
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        # Bindings by destination, so deleting a queue finds its bindings at once.
        self._inbound: defaultdict[Destination, set[Binding]] = defaultdict(set)

    def changed(self) -> None:
        """Topology changed: drop anything derived from it (routing caches)."""

    def queue_removed(self, queue: Queue) -> None:
        """A queue is gone, deleted (for counters)."""

    def add_binding(self, binding: Binding) -> None:
        self.restore_binding(binding)
        record = self._durable_binding(binding)
        if record is not None and self.store is not None:
            self.store.save_binding(record)

    def restore_binding(self, binding: Binding) -> None:
        """Note a binding its source already holds, without writing it to the store."""
        self._inbound[(binding.destination_kind, binding.destination)].add(binding)

    def _durable_binding(
        self, binding: Binding, source: Exchange | None = None
    ) -> BindingRecord | None:
        """A binding is durable when both its ends are (RabbitMQ's rule)."""
        source = source or self.exchanges.get(binding.source)
        if binding.destination_kind is DestinationKind.QUEUE:
            destination: Exchange | Queue | None = self.queues.get(binding.destination)
        else:
            destination = self.exchanges.get(binding.destination)
        if source is None or destination is None or not source.durable:
            return None
        if not destination.durable or getattr(destination, "exclusive", False):
            return None
        return BindingRecord(
            self.name,
            binding.source,
            binding.destination,
            str(binding.destination_kind),
            binding.routing_key,
            binding.argument_dict,
        )

    def _forget_binding(
        self, binding: Binding, source: Exchange | None = None, *, record: bool = True
    ) -> None:
        if record and self.store is not None:
            durable = self._durable_binding(binding, source)
            if durable is not None:
                self.store.delete_binding(durable)

    def drop_binding(self, binding: Binding, *, record: bool = True) -> None:
        self._forget_binding(binding, record=record)
        key = (binding.destination_kind, binding.destination)
        inbound = self._inbound.get(key)
        if inbound is not None:
            inbound.discard(binding)
            if not inbound:
                del self._inbound[key]
        source = self.exchanges.get(binding.source)
        if source is not None and source.auto_delete and not source.bindings:
            self.remove_exchange(source, record=record)

    def bindings(self) -> list[Binding]:
        return [b for bindings in self._inbound.values() for b in bindings]

    def _drop_inbound(self, destination: Destination, *, record: bool = True) -> None:
        for binding in self._inbound.pop(destination, set()):
            self._forget_binding(binding, record=record)
            source = self.exchanges.get(binding.source)
            if source is not None:
                source.unbind(binding)
                if source.auto_delete and not source.bindings:
                    self.remove_exchange(source, record=record)

    def remove_exchange(self, exchange: Exchange, *, record: bool = True) -> None:
        if self.exchanges.get(exchange.name) is not exchange:
            return
        self._drop_inbound((DestinationKind.EXCHANGE, exchange.name), record=record)
        del self.exchanges[exchange.name]
        for binding in list(exchange.bindings):
            self._forget_binding(binding, exchange, record=record)
            exchange.unbind(binding)
            self.drop_binding(binding, record=record)
        if record and exchange.durable and self.store is not None:
            self.store.delete_exchange(self.name, exchange.name)
        self.changed()

    def remove_queue(self, queue: Queue, *, record: bool = True) -> int:
        self._drop_inbound((DestinationKind.QUEUE, queue.name), record=record)
        removed = self.queues.get(queue.name) is queue
        if removed:
            del self.queues[queue.name]
        if record and queue.durable and not queue.exclusive and self.store is not None:
            self.store.delete_queue(self.name, queue.name)
        self.changed()
        dropped = queue.delete()
        if removed:
            self.queue_removed(queue)
        return dropped

    def persist_exchange(self, exchange: Exchange) -> None:
        if exchange.durable and self.store is not None:
            self.store.save_exchange(
                ExchangeRecord(
                    self.name,
                    exchange.name,
                    exchange.type,
                    exchange.durable,
                    exchange.auto_delete,
                    exchange.internal,
                    dict(exchange.arguments),
                )
            )

    def persist_queue(self, queue: Queue) -> None:
        if queue.durable and not queue.exclusive and self.store is not None:
            self.store.save_queue(
                QueueRecord(
                    self.name, queue.name, queue.durable, queue.auto_delete, dict(queue.arguments)
                )
            )
