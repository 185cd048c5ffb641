"""What one client may ask of a virtual host, every rule checked here and only here.

A :class:`Client` is one caller's view of one vhost: an AMQP channel, an HTTP
API request, the embedded API. Each entry point shapes its own input and output
(frames, JSON, Python values) and calls these methods, which take and return
core objects; the rules live here once, so the entry points cannot drift apart:

- configure/write/read permissions, topic permissions (publish to and bind from
  a topic exchange), dead-letter and alternate exchanges (RabbitMQ 3.10's
  ``rabbit_channel``: a new queue with ``x-dead-letter-exchange`` needs read on
  the queue and write on that exchange), through :mod:`pigeon.auth.operations`;
- no publish to an internal exchange;
- the ``user_id`` property must name the authenticated user, unless the user
  has the ``impersonator`` tag;
- vhost limits (``max-queues``) are the vhost's own (:mod:`pigeon.core.policies`);
  connection and channel limits are counted by :class:`~.limits.ConnectionLimits`;
- resource alarms (:class:`~pigeon.core.alarms.Alarms` in :class:`~.services.Services`)
  stop reading connections that publish, which is flow control, each protocol's own;
  a request of the HTTP or embedded API is not held (RabbitMQ 3.10.8's API publishes
  and declares during a memory alarm too, checked against a node).

A client with no user (``user=None``) is the broker's own program (the embedded
API without :meth:`~pigeon.embedded.api.EmbeddedAPI.as_user`): permissions are
not asked, every other rule applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pigeon.auth import operations as access
from pigeon.auth.authorization import Identity, Permission, Resource, authorize
from pigeon.core.binding import DestinationKind
from pigeon.errors import AccessRefused, PreconditionFailed
from pigeon.operations.replies import REPLY_TO_PREFIX

if TYPE_CHECKING:
    from pigeon.core.consumer import Consumer
    from pigeon.core.entry import Entry
    from pigeon.core.exchange import Exchange
    from pigeon.core.message import Message
    from pigeon.core.queue import Queue
    from pigeon.core.topology import DeclaredQueue
    from pigeon.core.vhost import VirtualHost
    from pigeon.operations.services import Services

IMPERSONATOR = "impersonator"
C = TypeVar("C", bound="Consumer")


class Client:
    """One caller on one vhost: ``user`` (None: the broker's own program) and ``owner``
    (what exclusive queues belong to: an AMQP connection; None for the APIs)."""

    __slots__ = ("may_publish", "owner", "services", "user", "vhost")

    def __init__(
        self,
        services: Services,
        vhost: VirtualHost,
        user: Identity | None,
        owner: object = None,
    ) -> None:
        self.services = services
        self.vhost = vhost
        self.user = user
        self.owner = owner
        # Exchanges this client was allowed to publish to, by name: checked once, as
        # RabbitMQ's channels cache their permission checks (topic exchanges depend on the
        # key, so never here). A publish without a user-id to the very exchange object
        # found here passes every check of publish_target: a protocol's hot path may skip
        # the call (an exchange deleted and declared again is another object).
        self.may_publish: dict[str, Exchange] = {}

    def relogin(self, user: Identity) -> None:
        """The client's credentials changed (AMQP update-secret): check as ``user`` from
        now on, nothing cached from before."""
        self.user = user
        self.may_publish.clear()

    def _check(self, rule: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if self.user is not None:
            rule(self.user, self.vhost.name, *args, **kwargs)

    def _type_of(self, exchange: str) -> str | None:
        found = self.vhost.exchanges.get(exchange)
        return found.type if found is not None else None

    # -- exchanges -------------------------------------------------------------------

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
        vhost = self.vhost
        self._check(
            access.exchange_declare,
            name,
            passive=passive,
            arguments=arguments,
            new=name not in vhost.exchanges,
        )
        return vhost.declare_exchange(
            name,
            type,
            passive=passive,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
        )

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        self._check(access.exchange_delete, name)
        self.vhost.delete_exchange(name, if_unused=if_unused)

    # -- queues -------------------------------------------------------------------------

    def declare_queue(
        self,
        name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> DeclaredQueue:
        """``name`` empty: a server-named queue. A new queue with a dead-letter exchange
        needs read on the queue and write on that exchange (rabbit_channel, 3.10)."""
        vhost = self.vhost
        self._check(
            access.queue_declare,
            name,
            passive=passive,
            arguments=arguments,
            new=name not in vhost.queues,
        )
        return vhost.declare_queue(
            name,
            owner=self.owner,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )

    def delete_queue(self, name: str, *, if_unused: bool = False, if_empty: bool = False) -> int:
        """Returns how many ready messages went with the queue."""
        self._check(access.queue_delete, name)
        return self.vhost.delete_queue(
            name, owner=self.owner, if_unused=if_unused, if_empty=if_empty
        )

    def purge(self, name: str) -> int:
        self._check(access.queue_purge, name)
        return self.vhost.purge_queue(name, self.owner)

    # -- bindings --------------------------------------------------------------------------

    def bind(
        self,
        source: str,
        destination: str,
        kind: DestinationKind,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._check_binding(source, destination, kind, routing_key)
        self.vhost.bind(source, destination, kind, routing_key, arguments, owner=self.owner)

    def unbind(
        self,
        source: str,
        destination: str,
        kind: DestinationKind,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._check_binding(source, destination, kind, routing_key)
        self.vhost.unbind(source, destination, kind, routing_key, arguments, owner=self.owner)

    def _check_binding(
        self, source: str, destination: str, kind: DestinationKind, routing_key: str
    ) -> None:
        """Write on the destination, read on the source (+ topic read of the key)."""
        rule = access.queue_bind if kind is DestinationKind.QUEUE else access.exchange_bind
        self._check(rule, destination, source, routing_key, self._type_of(source))

    # -- publish --------------------------------------------------------------------------

    def publish_target(self, exchange: str, routing_key: str, user_id: str | None) -> Exchange:
        """The checks of a publish, before its message is made: the exchange it goes to,
        or the refusal (404 no exchange, 403 permission or internal, 406 user-id)."""
        vhost = self.vhost
        target = vhost.exchanges.get(exchange) or vhost.exchange(exchange)
        user = self.user
        checked = exchange in self.may_publish and target.type != "topic"
        if user is not None and not checked:
            access.publish(user, vhost.name, exchange, routing_key, target.type)
        if target.internal:
            raise AccessRefused(
                f"cannot publish to internal exchange '{target.name}' in vhost '{vhost.name}'"
            )
        if (
            user_id is not None
            and user is not None
            and user_id != user.name
            and IMPERSONATOR not in user.tags
        ):
            raise PreconditionFailed(
                f"user_id property set to '{user_id}' but authenticated user was '{user.name}'"
            )
        if target.type != "topic":
            self.may_publish[exchange] = target
        return target

    def publish(self, message: Message) -> int:
        """Check and route a message; how many queues (or reply targets) took it."""
        target = self.publish_target(
            message.exchange, message.routing_key, message.properties.user_id
        )
        if message.exchange == "" and message.routing_key.startswith(REPLY_TO_PREFIX):
            # Direct reply-to: straight to the requester, through no queue.
            return self.services.replies.deliver(message.routing_key, message)
        routed, _ = self.vhost.publish(message, target)
        return routed

    # -- retained messages (MQTT) -----------------------------------------------------------

    def retain(self, topic: str, message: Message) -> bool:
        """Keep ``message`` as the retained message of MQTT topic ``topic`` (an empty body
        clears it: the core decides, see :mod:`pigeon.core.retained`); True when one is
        now retained. The checks are a publish's of the same message (write on
        ``message.exchange``, topic write of ``message.routing_key``, internal exchange,
        user-id), so a client retains only where it may publish. Routing the message
        is a separate :meth:`publish`. ResourceLimit: a new topic over the vhost's limit.
        """
        self.publish_target(message.exchange, message.routing_key, message.properties.user_id)
        return self.vhost.retained.retain(topic, message)

    def retained(
        self, topic_filter: str, *, exchange: str, binding_key: str
    ) -> list[tuple[str, Message]]:
        """(topic, message) of the live retained messages a new subscription with MQTT
        ``topic_filter`` gets (none for ``$share/...``), after the read checks of the
        subscription's binding: read on ``exchange`` and, for a topic exchange, topic
        read of ``binding_key`` (the filter as the protocol binds it, ``a.*.#``)."""
        user = self.user
        if user is not None:
            kind = self._type_of(exchange)
            key = binding_key if kind == access.TOPIC else None
            authorize(user, self.vhost.name, Permission.READ, Resource.EXCHANGE, exchange, key)
        return self.vhost.retained.match(topic_filter)

    # -- get, consume, settle ---------------------------------------------------------------

    def queue_to_read(self, name: str) -> Queue:
        """The queue for basic.get or basic.consume, after the read check."""
        self._check(access.consume, name)
        return self.vhost.queue(name, self.owner)

    def queues_to_move(self, source: str, destination: str) -> tuple[Queue, Queue]:
        """The two queues of a move of messages (the management API's own), after its
        checks: read on the source, write on the destination."""
        self._check(access.move, source, destination)
        vhost = self.vhost
        return vhost.queue(source, self.owner), vhost.queue(destination, self.owner)

    def get(self, name: str, *, no_ack: bool) -> tuple[Queue, Entry | None]:
        """Take the next ready message (``basic.get``): the queue and the entry, if any."""
        queue = self.queue_to_read(name)
        return queue, queue.get(no_ack)

    def consume(
        self,
        queue: Queue,
        consumer: C,
        *,
        exclusive: bool = False,
        accepted: Callable[[], None] | None = None,
    ) -> C:
        """Attach a consumer to a queue from :meth:`queue_to_read`. ``accepted`` runs once
        the consumer is allowed, before the queue's first delivery to it (consume-ok)."""
        queue.check_exclusive_use(exclusive)
        if accepted is not None:
            accepted()
        queue.add_consumer(consumer)
        return consumer

    @staticmethod
    def settle(queue: Queue, entries: list[Entry], *, ack: bool, requeue: bool) -> None:
        """Acknowledge, requeue or reject (dead-letter or drop) deliveries of one queue.

        No permission is asked: a client settles only what it was given."""
        if ack:
            queue.ack_many(entries)
        elif requeue:
            queue.requeue(entries)
        else:
            for entry in entries:
                queue.reject(entry)
