"""A virtual host: its exchanges, queues and bindings, and routing between them.

Everything a protocol does to the topology goes through here, so the rules
(reserved names, equivalence on redeclare, exclusive ownership, auto-delete,
exchange-to-exchange bindings, alternate exchanges, CC/BCC, dead-lettering)
live in one place. Texts of errors follow RabbitMQ's, which clients show.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pigeon.core.binding import Binding, DestinationKind
from pigeon.core.dead_letter import dead_letter_message, is_cycle
from pigeon.core.entry import QueueStats
from pigeon.core.exchange import EXCHANGE_TYPES, Exchange
from pigeon.core.message import Message, MessageSizes
from pigeon.core.options import NEUTRAL, ExchangeOptions, QueueOptions, Vocabulary
from pigeon.core.policies import VhostPolicies
from pigeon.core.policy import Policy
from pigeon.core.ports import DeliveryObserver, Scheduler, Store
from pigeon.core.queue import Queue
from pigeon.core.queue_api import QueueHandle
from pigeon.core.queue_types import QUORUM, QueueFactory, queue_class
from pigeon.core.retained import DEFAULT_LIMIT, RetainedMessages
from pigeon.core.routing import Routing, VhostStats
from pigeon.core.topology import DeclaredQueue, Topology
from pigeon.errors import (
    AccessRefused,
    CommandInvalid,
    NotFound,
    NotSupported,
    PreconditionFailed,
    ResourceLocked,
)

DEFAULT_EXCHANGES = {
    "": "direct",
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}
# RabbitMQ's answer to declaring (passive too), deleting or binding the default exchange.
DEFAULT_EXCHANGE_REFUSED = "operation not permitted on the default exchange"


def server_generated_name(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


class NodeCounters(Protocol):
    queues_declared: int
    queues_created: int
    queues_deleted: int
    message_sizes: MessageSizes
    deleted_queues: QueueStats


class VirtualHost(Routing, Topology):
    # The queues of this process. Routing needs only their QueueHandle side, so that a
    # queue living elsewhere can be routed to as well.
    queues: dict[str, Queue]
    # Where queues this process does not keep itself are made (cluster mode); None: here.
    queue_factory: QueueFactory | None = None

    def __init__(
        self,
        name: str,
        scheduler: Scheduler,
        observers: list[DeliveryObserver] | None = None,
        store: Store | None = None,
        watchers: list[Callable[[], object]] | None = None,
        node_stats: NodeCounters | None = None,
        *,
        vocabulary: Vocabulary = NEUTRAL,
        retained_limit: int | None = DEFAULT_LIMIT,
    ) -> None:
        """``vocabulary``: how clients' argument tables and policies read (operations);
        ``retained_limit``: the most topics with a retained message (None: no limit)."""
        super().__init__(name, store)
        self.vocabulary = vocabulary
        self.node_stats = node_stats
        self.watchers: list[Callable[[], object]] = [] if watchers is None else watchers
        self.scheduler = scheduler
        self.observers: list[DeliveryObserver] = [] if observers is None else observers
        self.stats = VhostStats()
        # Node-wide: a deleted vhost's messages stay counted.
        self.sizes = node_stats.message_sizes if node_stats is not None else MessageSizes()
        self.policies = VhostPolicies(name, store)
        # MQTT's retained messages, by topic name (core/retained.py).
        self.retained = RetainedMessages(name, scheduler, store, limit=retained_limit)
        self._route_cache: dict[tuple[str, str], list[QueueHandle]] = {}
        # Queues with messages for waiting consumers, handed over by dispatch_due.
        self._due: list[QueueHandle] = []
        self._due_scheduled = False
        for xname, xtype in DEFAULT_EXCHANGES.items():
            self.exchanges[xname] = Exchange(xname, xtype, durable=True)

    def queue_removed(self, queue: Queue) -> None:
        if self.node_stats is not None:
            self.node_stats.queues_deleted += 1
            self.node_stats.deleted_queues.add(queue.stats)

    def changed(self) -> None:
        self._route_cache.clear()
        for watcher in self.watchers:
            watcher()

    # -- exchanges ------------------------------------------------------------

    def declare_exchange(
        self,
        name: str,
        type: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        options: ExchangeOptions | None = None,
    ) -> Exchange:
        """``arguments``: as declared, kept to report back; ``options``: what they say,
        if the caller converted them (else the vocabulary does)."""
        existing = self.exchanges.get(name)
        if passive:
            if name == "":
                raise AccessRefused(DEFAULT_EXCHANGE_REFUSED)
            if existing is None:
                raise NotFound(f"no exchange '{name}' in vhost '{self.name}'")
            return existing
        if type not in EXCHANGE_TYPES:  # RabbitMQ checks the type first, even for ""
            raise CommandInvalid(f"unknown exchange type '{type}'")
        if name == "":
            raise AccessRefused(DEFAULT_EXCHANGE_REFUSED)
        if name.startswith("amq.") and existing is None:
            raise AccessRefused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
        arguments = dict(arguments or {})
        if existing is not None:
            problem = self.vocabulary.exchange_inequivalence(
                existing, self.name, type, durable, auto_delete, internal, arguments
            )
            if problem is not None:
                raise PreconditionFailed(problem)
            return existing
        if options is None:
            options = self.vocabulary.exchange_options(name, self.name, arguments)
        exchange = Exchange(
            name,
            type,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
            options=options,
        )
        self.policies.apply_exchange(exchange)
        self.exchanges[name] = exchange
        self.persist_exchange(exchange)
        self.changed()
        return exchange

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        if name == "":
            raise AccessRefused(DEFAULT_EXCHANGE_REFUSED)
        if name.startswith("amq."):  # any amq.* name, existing or not (RabbitMQ)
            raise AccessRefused(
                f"deletion of system exchange '{name}' in vhost '{self.name}' not allowed"
            )
        exchange = self.exchanges.get(name)
        if exchange is None:
            return  # deleting a missing exchange succeeds, as in RabbitMQ 3.x
        if if_unused and exchange.bindings:
            raise PreconditionFailed(f"exchange '{name}' in vhost '{self.name}' in use")
        self.remove_exchange(exchange)

    def exchange(self, name: str) -> Exchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise NotFound(f"no exchange '{name}' in vhost '{self.name}'")
        return exchange

    # -- queues ------------------------------------------------------------------

    def declare_queue(
        self,
        name: str,
        *,
        owner: object,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        options: QueueOptions | None = None,
    ) -> DeclaredQueue:
        """``arguments``: as declared, kept to report back and to compare on a redeclare;
        ``options``: what they say, if the caller converted them (else the vocabulary
        does, for a new queue only: a redeclare is compared, as in RabbitMQ)."""
        if passive:
            queue = self.queue(name, owner)
            return DeclaredQueue(queue, queue.message_count, len(queue.consumers))
        generated = not name
        if generated:
            name = server_generated_name("amq.gen-")
        existing = self.queues.get(name)
        if existing is None and not generated and name.startswith("amq."):
            raise AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        if self.node_stats is not None:  # counted before the equivalence check, as RabbitMQ
            self.node_stats.queues_declared += 1
        arguments = dict(arguments or {})
        if existing is not None:
            # Before any argument: redeclaring needs the same owner, and a differing
            # exclusive flag is a different owner (RabbitMQ's strict check, 405).
            if existing.exclusive_owner is not (owner if exclusive else None):
                raise self.locked(existing)
            problem = self.vocabulary.queue_inequivalence(existing, durable, auto_delete, arguments)
            if problem is not None:
                raise PreconditionFailed(problem)
            existing.touch()
            return DeclaredQueue(existing, existing.message_count, len(existing.consumers))
        self.vocabulary.check_new_queue(
            name,
            self.name,
            arguments,
            generated=generated,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
        )
        self.policies.check_queue_limit(name, len(self.queues))
        queue = self.new_queue(
            name,
            arguments,
            durable=durable,
            auto_delete=auto_delete,
            exclusive_owner=owner if exclusive else None,
            options=options,
        )
        self.queues[name] = queue
        if self.node_stats is not None:
            self.node_stats.queues_created += 1
        self.persist_queue(queue)
        self.changed()
        return DeclaredQueue(queue, 0, 0)

    def new_queue(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: object = None,
        options: QueueOptions | None = None,
    ) -> Queue:
        """A queue object with the policies that match it (declared or restored)."""
        declared = options
        if declared is None:
            declared = self.vocabulary.queue_options(name, self.name, arguments)
        policy, operator, effective = self.policies.for_queue(name, declared)
        make: Callable[..., Queue] | None = None
        if self.queue_factory is not None:
            make = self.queue_factory(
                effective,
                durable=durable,
                exclusive=exclusive_owner is not None,
                auto_delete=auto_delete,
            )
        queue = (make or queue_class(declared))(
            name,
            self.name,
            scheduler=self.scheduler,
            hooks=self,
            observers=self.observers,
            store=self.store,
            watchers=self.watchers,
            durable=durable,
            exclusive_owner=exclusive_owner,
            auto_delete=auto_delete,
            arguments=arguments,
            options=effective,
        )
        queue.declared = declared
        queue.policy, queue.operator_policy = policy, operator
        return queue

    # -- policies ------------------------------------------------------------------

    def set_policy(self, policy: Policy, *, operator: bool = False) -> bool:
        """Add or replace a (operator) policy and apply it at once; True if new."""
        created = self.policies.put(policy, operator=operator)
        self.apply_policies()
        return created

    def clear_policy(self, name: str, *, operator: bool = False) -> None:
        self.policies.remove(name, operator=operator)
        self.apply_policies()

    def apply_policies(self) -> None:
        self.policies.apply(self.queues.values(), self.exchanges.values())
        self.changed()  # an alternate exchange may have changed: routes are stale

    def queue(self, name: str, owner: object = None) -> Queue:
        """The queue, for an operation on it: another connection's exclusive queue is
        locked (405), as it is to the management API (RabbitMQ's answers)."""
        queue = self.find_queue(name)
        self.check_owner(queue, owner)
        return queue

    def find_queue(self, name: str) -> Queue:
        """The queue, to look at: exclusive ones too (RabbitMQ's management API lists
        and shows them; it refuses every operation on them)."""
        queue = self.queues.get(name)
        if queue is None:
            raise NotFound(f"no queue '{name}' in vhost '{self.name}'")
        return queue

    def check_owner(self, queue: Queue, owner: object) -> None:
        if queue.exclusive_owner is not None and queue.exclusive_owner is not owner:
            raise self.locked(queue)

    def locked(self, queue: Queue) -> ResourceLocked:
        return ResourceLocked(
            f"cannot obtain exclusive access to locked queue '{queue.name}' in vhost "
            f"'{self.name}'. It could be originally declared on another connection or "
            "the exclusive property value does not match that of the original declaration."
        )

    def delete_queue(
        self, name: str, *, owner: object, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        queue = self.queues.get(name)
        if queue is None:
            return 0  # as in RabbitMQ: deleting a missing queue succeeds
        self.check_owner(queue, owner)
        if queue.type == QUORUM and (if_unused or if_empty):
            # rabbit_quorum_queue:delete/4 in 3.10 (a connection error there too).
            raise NotSupported(
                f"cannot delete queue '{name}' in vhost '{self.name}'. queue.delete operations "
                f"with {'if-unused' if if_unused else 'if-empty'} flag set are not supported "
                "by quorum queues"
            )
        if if_unused and queue.consumers:
            raise PreconditionFailed(f"queue '{name}' in vhost '{self.name}' in use")
        if if_empty and queue.message_count:
            raise PreconditionFailed(f"queue '{name}' in vhost '{self.name}' not empty")
        return self.remove_queue(queue)

    def purge_queue(self, name: str, owner: object) -> int:
        return self.queue(name, owner).purge()

    def delete_owned_by(self, owner: object) -> None:
        """A connection closed: its exclusive queues go with it."""
        for queue in [q for q in self.queues.values() if q.exclusive_owner is owner]:
            self.remove_queue(queue)

    # -- bindings ----------------------------------------------------------------

    def _ends(
        self, source: str, destination: str, kind: DestinationKind
    ) -> tuple[Exchange, Queue | None]:
        """A binding's source exchange and destination queue (None: an exchange).

        NotFound names the source first when both are missing, as RabbitMQ does.
        """
        if source == "" or (kind is DestinationKind.EXCHANGE and destination == ""):
            raise AccessRefused(DEFAULT_EXCHANGE_REFUSED)
        exchange = self.exchange(source)
        if kind is DestinationKind.QUEUE:
            queue = self.queues.get(destination)
            if queue is None:
                raise NotFound(f"no queue '{destination}' in vhost '{self.name}'")
            return exchange, queue
        self.exchange(destination)
        return exchange, None

    def bind(
        self,
        source: str,
        destination: str,
        kind: DestinationKind,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        owner: object = None,
    ) -> None:
        exchange, queue = self._ends(source, destination, kind)
        if queue is not None:
            self.check_owner(queue, owner)
        if arguments and (problem := self.vocabulary.binding_problem(exchange.type, arguments)):
            raise PreconditionFailed(problem)
        binding = Binding.make(source, destination, kind, routing_key, arguments)
        if exchange.bind(binding):
            self.add_binding(binding)
            self.changed()

    def unbind(
        self,
        source: str,
        destination: str,
        kind: DestinationKind,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        owner: object = None,
    ) -> None:
        # Unbinding what is not there succeeds, as in RabbitMQ 3.x: a missing end or
        # binding, before anything about exclusive ownership.
        try:
            exchange, queue = self._ends(source, destination, kind)
        except NotFound:
            return
        binding = Binding.make(source, destination, kind, routing_key, arguments)
        if binding not in exchange.bindings:
            return
        if queue is not None:
            self.check_owner(queue, owner)
        exchange.unbind(binding)
        self.drop_binding(binding)
        self.changed()

    # -- QueueHooks ------------------------------------------------------------------

    def queue_unused(self, queue: Queue) -> None:
        if self.queues.get(queue.name) is queue:
            self.remove_queue(queue)

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> bool:
        dlx = queue.args.dead_letter_exchange
        exchange = self.exchanges.get(dlx) if dlx is not None else None
        if exchange is None:
            return False  # at most once, RabbitMQ drops dead letters to a missing exchange
        dead, deaths = dead_letter_message(
            message, queue.name, reason, exchange.name, queue.args.dead_letter_routing_key
        )
        targets = self.route(exchange, dead.routing_key, dead.properties.header_table())
        now = self.scheduler.time()
        accepted = bool(targets)
        for target in targets:
            if is_cycle(deaths, target.name):
                continue
            if not target.enqueue(dead, now):
                accepted = False
        return accepted
