"""Apply durable state changes (:mod:`pigeon.core.commands`) to a node's state.

Recovery is a replay: a store's snapshot, as commands, applied in order
(:meth:`pigeon.core.node.Node.restore`). A change that originates elsewhere (a
replicated log read by another node) is applied the same way. Nothing applied
here is written back to the store (it came from there, or from a log that has it):
declarations and messages are restored as they are; removals go through the core's
own removal paths, cascades included, with ``record=False``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pigeon.core.binding import Binding, DestinationKind
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
    ForgetRetained,
    Purge,
    RemoveMessages,
    RetainMessage,
    SaveDocument,
    Unbind,
)
from pigeon.core.exchange import EXCHANGE_TYPES, Exchange
from pigeon.core.parameters import GLOBAL_PARAMETER, PARAMETER
from pigeon.errors import PreconditionFailed

if TYPE_CHECKING:
    from pigeon.core.node import Node
    from pigeon.core.queue import Queue

log = logging.getLogger("pigeon.node")


def apply(node: Node, command: Command) -> bool:
    """Make ``command``'s change to ``node``; False when it names what is not there."""
    return _APPLY[type(command)](node, command)


def _add_message(node: Node, command: AddMessage) -> bool:
    queue = _queue(node, command.vhost, command.queue)
    if queue is not None:
        queue.restore(command.seq, command.message)
    return queue is not None


def _remove_messages(node: Node, command: RemoveMessages) -> bool:
    queue = _queue(node, command.vhost, command.queue)
    return queue is not None and queue.settled_elsewhere(set(command.seqs))


def _purge(node: Node, command: Purge) -> bool:
    queue = _queue(node, command.vhost, command.queue)
    if queue is not None:
        queue.purge(record=False)
    return queue is not None


def _delete_queue(node: Node, command: DeleteQueue) -> bool:
    queue = _queue(node, command.vhost, command.name)
    if queue is not None:
        node.vhosts[command.vhost].remove_queue(queue, record=False)
    return queue is not None


def _delete_exchange(node: Node, command: DeleteExchange) -> bool:
    host = node.vhosts.get(command.vhost)
    exchange = host.exchanges.get(command.name) if host is not None else None
    if host is not None and exchange is not None:
        host.remove_exchange(exchange, record=False)
    return exchange is not None


def _declare_vhost(node: Node, command: DeclareVhost) -> bool:
    node.restore_vhost(command.name)
    return True


def _delete_vhost(node: Node, command: DeleteVhost) -> bool:
    if command.name not in node.vhosts:
        return False
    node.delete_vhost(command.name, record=False)
    return True


def _save_document(node: Node, command: SaveDocument) -> bool:
    documents = {command.kind: {command.key: command.value}}
    node.parameters.restore(documents)
    for host in node.vhosts.values():
        try:
            host.policies.restore(documents, node.vocabulary)
        except PreconditionFailed as damaged:  # keep serving without the bad one
            log.warning("stored policies of vhost %r are damaged: %s", host.name, damaged)
    return True


def _delete_document(node: Node, command: DeleteDocument) -> bool:
    # Users and permissions are the accounts layer's documents, not the core's.
    if command.kind == GLOBAL_PARAMETER:
        return node.parameters.global_values.pop(command.key, None) is not None
    if command.kind == PARAMETER:
        key = tuple(json.loads(command.key))
        return node.parameters.values.pop(key, None) is not None
    return False


def _retain_message(node: Node, command: RetainMessage) -> bool:
    host = node.vhosts.get(command.vhost)
    if host is not None:
        host.retained.restore(command.topic, command.message, command.expires)
    return host is not None


def _forget_retained(node: Node, command: ForgetRetained) -> bool:
    host = node.vhosts.get(command.vhost)
    return host is not None and host.retained.restore_forget(command.topic)


def _queue(node: Node, vhost: str, name: str) -> Queue | None:
    host = node.vhosts.get(vhost)
    return host.queues.get(name) if host is not None else None


def _declare_exchange(node: Node, command: DeclareExchange) -> bool:
    record = command.record
    host = node.vhosts.get(record.vhost)
    if host is None or record.type not in EXCHANGE_TYPES:
        return False
    if record.name not in host.exchanges:
        exchange = Exchange(
            record.name,
            record.type,
            durable=True,
            auto_delete=record.auto_delete,
            internal=record.internal,
            arguments=record.arguments,
            options=node.vocabulary.exchange_options(record.name, record.vhost, record.arguments),
        )
        host.exchanges[record.name] = exchange
        host.policies.apply_exchange(exchange)
        host.changed()
    return True


def _declare_queue(node: Node, command: DeclareQueue) -> bool:
    record = command.record
    host = node.vhosts.get(record.vhost)
    if host is None:
        return False
    if record.name not in host.queues:
        host.queues[record.name] = host.new_queue(
            record.name, record.arguments, durable=True, auto_delete=record.auto_delete
        )
        host.changed()
    return True


def _binding(node: Node, record: BindingRecord) -> tuple[Exchange, Binding] | None:
    host = node.vhosts.get(record.vhost)
    if host is None:
        return None
    source = host.exchanges.get(record.source)
    kind = DestinationKind(record.destination_kind)
    targets: Mapping[str, object] = host.queues if kind is DestinationKind.QUEUE else host.exchanges
    if source is None or record.destination not in targets:
        return None
    binding = Binding.make(
        record.source, record.destination, kind, record.routing_key, record.arguments
    )
    return source, binding


def _bind(node: Node, command: Bind) -> bool:
    record = command.record
    found = _binding(node, record)
    if found is None:
        return False
    source, binding = found
    if source.bind(binding):
        host = node.vhosts[record.vhost]
        # Not add_binding: that writes to the store, where this came from.
        host.restore_binding(binding)
    return True


def _unbind(node: Node, command: Unbind) -> bool:
    record = command.record
    found = _binding(node, record)
    if found is None:
        return False
    source, binding = found
    host = node.vhosts[record.vhost]
    if source.unbind(binding):
        # Not vhost.unbind's path: that writes to the store.
        host.drop_binding(binding, record=False)
        host.changed()
    return True


_APPLY: dict[type[Any], Callable[[Node, Any], bool]] = {
    AddMessage: _add_message,
    RemoveMessages: _remove_messages,
    Purge: _purge,
    DeclareQueue: _declare_queue,
    DeleteQueue: _delete_queue,
    Bind: _bind,
    Unbind: _unbind,
    DeclareExchange: _declare_exchange,
    DeleteExchange: _delete_exchange,
    DeclareVhost: _declare_vhost,
    DeleteVhost: _delete_vhost,
    SaveDocument: _save_document,
    DeleteDocument: _delete_document,
    RetainMessage: _retain_message,
    ForgetRetained: _forget_retained,
}
