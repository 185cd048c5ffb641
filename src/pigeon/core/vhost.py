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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pigeon.core.arguments import QueueArguments, parse_expiration
from pigeon.core.binding import Binding, DestinationKind
from pigeon.core.exchange import EXCHANGE_TYPES, Exchange, exchange_argument_error
from pigeon.core.message import Message
from pigeon.core.policies import VhostPolicies
from pigeon.core.policy import Policy
from pigeon.core.ports import DeliveryObserver, Scheduler, Store
from pigeon.core.queue import Queue
from pigeon.core.queue_types import QUORUM, check_declare, queue_class
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
ROUTE_CACHE_LIMIT = 4096
# RabbitMQ's answer to declaring (passive too), deleting or binding the default exchange.
DEFAULT_EXCHANGE_REFUSED = "operation not permitted on the default exchange"


def server_generated_name(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


@dataclass(slots=True)
class VhostStats:
    received: int = 0
    routed: int = 0
    unroutable_dropped: int = 0
    unroutable_returned: int = 0
    confirmed: int = 0


class NodeCounters(Protocol):
    queues_created: int
    queues_deleted: int


class VirtualHost(Topology):
    def __init__(
        self,
        name: str,
        scheduler: Scheduler,
        observers: list[DeliveryObserver] | None = None,
        store: Store | None = None,
        watchers: list[Callable[[], object]] | None = None,
        node_stats: NodeCounters | None = None,
    ) -> None:
        super().__init__(name, store)
        self.node_stats = node_stats
        self.watchers: list[Callable[[], object]] = [] if watchers is None else watchers
        self.scheduler = scheduler
        self.observers: list[DeliveryObserver] = [] if observers is None else observers
        self.stats = VhostStats()
        self.policies = VhostPolicies(name, store)
        self._route_cache: dict[tuple[str, str], list[Queue]] = {}
        # Queues with messages for waiting consumers, handed over by dispatch_due.
        self._due: list[Queue] = []
        self._due_scheduled = False
        for xname, xtype in DEFAULT_EXCHANGES.items():
            self.exchanges[xname] = Exchange(xname, xtype, durable=True)

    def queue_removed(self) -> None:
        if self.node_stats is not None:
            self.node_stats.queues_deleted += 1

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
    ) -> Exchange:
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
            problem = existing.inequivalence(
                type, durable, auto_delete, internal, arguments, vhost=self.name
            )
            if problem is not None:
                raise PreconditionFailed(problem)
            return existing
        problem = exchange_argument_error(name, arguments, vhost=self.name)
        if problem is not None:
            raise PreconditionFailed(problem)
        exchange = Exchange(
            name,
            type,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
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
    ) -> DeclaredQueue:
        if passive:
            queue = self.queue(name, owner)
            return DeclaredQueue(queue, queue.message_count, len(queue.consumers))
        generated = not name
        if generated:
            name = server_generated_name("amq.gen-")
        existing = self.queues.get(name)
        if existing is None and not generated and name.startswith("amq."):
            raise AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        arguments = dict(arguments or {})
        if existing is not None:
            # Before any argument: redeclaring needs the same owner, and a differing
            # exclusive flag is a different owner (RabbitMQ's strict check, 405).
            if existing.exclusive_owner is not (owner if exclusive else None):
                raise self.locked(existing)
            problem = self.queue_inequivalence(existing, durable, auto_delete, arguments)
            if problem is not None:
                raise PreconditionFailed(problem)
            existing.touch()
            return DeclaredQueue(existing, existing.message_count, len(existing.consumers))
        check_declare(
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
    ) -> Queue:
        """A queue object with the policies that match it (declared or restored)."""
        declared = QueueArguments.parse(name, self.name, arguments)
        policy, operator, options = self.policies.for_queue(name, arguments, declared)
        queue = queue_class(arguments)(
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
            options=options,
        )
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

    # -- routing -------------------------------------------------------------------

    def route(
        self, exchange: Exchange, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Queue]:
        """The queues a message reaches, each once."""
        cc = headers.get("CC") if headers else None
        bcc = headers.get("BCC") if headers else None
        cacheable = cc is None and bcc is None
        if cacheable:
            key = (exchange.name, routing_key)
            cached = self._route_cache.get(key)
            if cached is not None:
                return cached
        keys = [routing_key]
        for extra in (cc, bcc):
            if isinstance(extra, list):
                keys.extend(k for k in extra if isinstance(k, str))
        queues, uses_headers = self._walk(exchange, keys, headers)
        if cacheable and not uses_headers:
            if len(self._route_cache) >= ROUTE_CACHE_LIMIT:
                self._route_cache.clear()
            self._route_cache[key] = queues
        return queues

    def _walk(
        self, start: Exchange, keys: list[str], headers: Mapping[str, Any] | None
    ) -> tuple[list[Queue], bool]:
        found: dict[str, Queue] = {}
        seen: set[str] = set()
        pending = [start]
        uses_headers = False
        while pending:
            exchange = pending.pop()
            if exchange.name in seen:
                continue
            seen.add(exchange.name)
            uses_headers = uses_headers or exchange.type == "headers"
            matched = False
            for key in keys:
                if exchange.name == "":
                    queue = self.queues.get(key)
                    if queue is not None:
                        found.setdefault(key, queue)
                        matched = True
                    continue
                for kind, name in exchange.route(key, headers):
                    matched = True
                    if kind is DestinationKind.QUEUE:
                        if (queue := self.queues.get(name)) is not None:
                            found.setdefault(name, queue)
                    elif (target := self.exchanges.get(name)) is not None:
                        pending.append(target)
            alternate = exchange.alternate_exchange
            if not matched and alternate is not None and alternate in self.exchanges:
                pending.append(self.exchanges[alternate])
        return list(found.values()), uses_headers

    def publish(self, message: Message, exchange: Exchange) -> tuple[int, bool]:
        """Route and enqueue. Returns (queues routed to, whether any refused it)."""
        properties = message.properties
        headers = properties.headers
        # Parsed once per message, and refused before anything is routed.
        expiration = properties.expiration
        ttl = None if expiration is None else parse_expiration(expiration)
        queues = None if headers else self._route_cache.get((exchange.name, message.routing_key))
        if queues is None:
            queues = self.route(exchange, message.routing_key, headers)
        stats = self.stats
        stats.received += 1
        exchange.stats.publish_in += 1
        if queues:
            # As RabbitMQ's messages_routed: one per queue reached, not per message.
            stats.routed += len(queues)
            exchange.stats.publish_out += len(queues)
        if headers and "BCC" in headers:
            # BCC recipients must not see each other: strip it before anyone stores it.
            headers = {k: v for k, v in headers.items() if k != "BCC"}
            message = message.with_properties(message.properties.copy(headers=headers))
        now = self.scheduler.time()
        refused = False
        due = self._due
        for queue in queues:
            if not queue.enqueue(message, now, ttl, due):
                refused = True
        self._backstop_due()
        return len(queues), refused

    def publish_run(self, messages: list[Message], exchange: Exchange) -> bool:
        """Route and enqueue messages that share an exchange and a routing key and carry
        neither headers nor an expiration: routed once, enqueued together.

        Returns False, having done nothing, when a queue they reach needs the general
        path (:meth:`publish`, one message at a time) or when nothing is reached.
        """
        key = messages[0].routing_key
        queues = self._route_cache.get((exchange.name, key))
        if queues is None:
            queues = self.route(exchange, key, None)
        if not queues or not all(queue.takes_runs for queue in queues):
            return False
        count = len(messages)
        stats = self.stats
        stats.received += count
        stats.routed += count * len(queues)
        exchange.stats.publish_in += count
        exchange.stats.publish_out += count * len(queues)
        now = self.scheduler.time()
        due = self._due
        for queue in queues:
            queue.enqueue_run(messages, now, due)
        self._backstop_due()
        return True

    def dispatch_due(self) -> None:
        """Hand over what the publishes since the last call left waiting for consumers:
        every queue's messages in one batch instead of one delivery per publish."""
        due = self._due
        while due:
            queues = due.copy()
            due.clear()
            for queue in queues:
                queue.dispatch_due()

    def _backstop_due(self) -> None:
        # Whoever publishes should call dispatch_due when its batch is done; this is the
        # backstop for those that don't (the embedded API, dead letters).
        if self._due and not self._due_scheduled:
            self._due_scheduled = True
            self.scheduler.call_soon(self._dispatch_due_soon)

    def _dispatch_due_soon(self) -> None:
        self._due_scheduled = False
        self.dispatch_due()

    # -- QueueHooks ------------------------------------------------------------------

    def queue_unused(self, queue: Queue) -> None:
        if self.queues.get(queue.name) is queue:
            self.remove_queue(queue)

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> bool:
        dlx = queue.args.dead_letter_exchange
        exchange = self.exchanges.get(dlx) if dlx is not None else None
        if exchange is None:
            return False  # at most once, RabbitMQ drops dead letters to a missing exchange
        props = message.properties
        headers = dict(props.headers or {})
        routing_keys = [message.routing_key]
        for name in ("CC", "BCC"):
            extra = headers.get(name)
            if isinstance(extra, list):
                routing_keys.extend(k for k in extra if isinstance(k, str))
        deaths = _record_death(
            headers, queue.name, reason, message.exchange, routing_keys, props.expiration
        )
        routing_key = queue.args.dead_letter_routing_key or message.routing_key
        dead = Message(
            exchange=exchange.name,
            routing_key=routing_key,
            properties=props.copy(headers=headers, expiration=None),
            body=message.body,
            published_at=message.published_at,
        )
        targets = self.route(exchange, routing_key, dead.properties.headers)
        now = self.scheduler.time()
        accepted = bool(targets)
        for target in targets:
            if _is_cycle(deaths, target.name):
                continue
            if not target.enqueue(dead, now):
                accepted = False
        return accepted


def _now() -> datetime:
    """Wall-clock time to the second, which protocols carry as a timestamp."""
    return datetime.now(UTC).replace(microsecond=0)


def _record_death(
    headers: dict[str, Any],
    queue: str,
    reason: str,
    exchange: str,
    routing_keys: list[str],
    expiration: str | None,
) -> list[dict[str, Any]]:
    """Update ``x-death`` the way RabbitMQ does: one entry per (queue, reason), newest first."""
    deaths = [dict(d) for d in headers.get("x-death") or [] if isinstance(d, dict)]
    for index, death in enumerate(deaths):
        if death.get("queue") == queue and death.get("reason") == reason:
            death["count"] = int(death.get("count", 0)) + 1
            death["time"] = _now()
            deaths.insert(0, deaths.pop(index))
            break
    else:
        death = {
            "count": 1,
            "reason": reason,
            "queue": queue,
            "time": _now(),
            "exchange": exchange,
            "routing-keys": routing_keys,
        }
        if expiration is not None:
            death["original-expiration"] = expiration
        deaths.insert(0, death)
        headers.setdefault("x-first-death-reason", reason)
        headers.setdefault("x-first-death-queue", queue)
        headers.setdefault("x-first-death-exchange", exchange)
    headers["x-death"] = deaths
    return deaths


def _is_cycle(deaths: list[dict[str, Any]], target: str) -> bool:
    """A dead letter returning to a queue it died in, with no rejection on the way."""
    if not any(d.get("queue") == target for d in deaths[1:]) and deaths[0].get("queue") != target:
        return False
    return not any(d.get("reason") == "rejected" for d in deaths)
