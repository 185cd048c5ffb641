"""A session's subscriptions: one queue per session, one binding per topic filter.

As RabbitMQ's MQTT plugin: the queue is ``mqtt-subscription-<client id>qos1``,
bound to the MQTT exchange (``amq.topic``) once per filter with the filter as
routing key (:func:`~.convert.routing_key`). The subscription options are the
binding's arguments, so a durable session's subscriptions come back with its
bindings after a restart, and the queue is an ordinary queue the management
API lists and measures.

A clean session (5.0: clean start with session expiry 0) gets an exclusive
queue that goes with its connection; a persistent one a durable queue that
expires (``x-expires``) after the session expiry interval without a consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pigeon.core.binding import DestinationKind
from pigeon.protocols.mqtt import convert
from pigeon.protocols.mqtt.packets import SubscriptionOptions
from pigeon.protocols.mqtt.topics import filter_matches

if TYPE_CHECKING:
    from pigeon.core.queue import Queue
    from pigeon.operations.client import Client

QOS = "x-mqtt-qos"
NO_LOCAL = "x-mqtt-no-local"
RETAIN_AS_PUBLISHED = "x-mqtt-retain-as-published"
IDENTIFIER = "x-mqtt-subscription-identifier"
TOPIC_FILTER = "x-mqtt-topic-filter"


def queue_name(client_id: str) -> str:
    return f"mqtt-subscription-{client_id}qos1"


@dataclass(frozen=True, slots=True)
class Subscription:
    topic_filter: str
    options: SubscriptionOptions
    identifier: int | None = None

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            TOPIC_FILTER: self.topic_filter,
            QOS: self.options.qos,
            NO_LOCAL: self.options.no_local,
            RETAIN_AS_PUBLISHED: self.options.retain_as_published,
        }
        if self.identifier is not None:
            arguments[IDENTIFIER] = self.identifier
        return arguments

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> Subscription | None:
        topic_filter = arguments.get(TOPIC_FILTER)
        qos = arguments.get(QOS)
        if not isinstance(topic_filter, str) or not isinstance(qos, int):
            return None  # a binding someone else made to this queue
        options = SubscriptionOptions(
            qos=qos,
            no_local=bool(arguments.get(NO_LOCAL)),
            retain_as_published=bool(arguments.get(RETAIN_AS_PUBLISHED)),
        )
        identifier = arguments.get(IDENTIFIER)
        return cls(topic_filter, options, identifier if isinstance(identifier, int) else None)


@dataclass(frozen=True, slots=True)
class Match:
    """What the subscriptions matching one topic say about its delivery."""

    qos: int  # the maximum granted QoS of them [MQTT-3.3.5-1]
    identifiers: tuple[int, ...]
    retain_as_published: bool


class Subscriptions:
    """The filters of one session and the queue they are bound to."""

    def __init__(self, exchange: str, client_id: str) -> None:
        self.exchange = exchange
        self.queue_name = queue_name(client_id)
        self.by_filter: dict[str, Subscription] = {}

    def restore(self, queue: Queue, client: Client) -> None:
        """A persistent session's subscriptions, from its queue's bindings."""
        exchange = client.vhost.exchanges.get(self.exchange)
        if exchange is None:
            return
        for binding in exchange.bindings:
            if (
                binding.destination == queue.name
                and binding.destination_kind is DestinationKind.QUEUE
            ):
                found = Subscription.from_arguments(binding.argument_dict)
                if found is not None:
                    self.by_filter[found.topic_filter] = found

    def add(self, client: Client, subscription: Subscription) -> bool:
        """Bind (replacing the filter's earlier subscription [MQTT-3.8.4-3]); True if the
        session had no subscription with this filter."""
        key = convert.routing_key(subscription.topic_filter)
        previous = self.by_filter.get(subscription.topic_filter)
        client.bind(
            self.exchange, self.queue_name, DestinationKind.QUEUE, key, subscription.arguments()
        )
        if previous is not None and previous != subscription:
            client.unbind(
                self.exchange, self.queue_name, DestinationKind.QUEUE, key, previous.arguments()
            )
        self.by_filter[subscription.topic_filter] = subscription
        return previous is None

    def remove(self, client: Client, topic_filter: str) -> bool:
        """Unbind a filter; False if the session had no such subscription."""
        previous = self.by_filter.pop(topic_filter, None)
        if previous is None:
            return False
        client.unbind(
            self.exchange,
            self.queue_name,
            DestinationKind.QUEUE,
            convert.routing_key(topic_filter),
            previous.arguments(),
        )
        return True

    def match(self, topic: str, *, own: bool = False) -> Match | None:
        """The delivery of a message on ``topic``: one per session, at the highest QoS
        granted by the matching subscriptions, with all their identifiers. ``own``: the
        session published it, so No Local subscriptions do not count [MQTT-3.8.3-3];
        None if nothing else matched."""
        qos = -1
        identifiers: list[int] = []
        retain_as_published = False
        skipped = False
        for subscription in self.by_filter.values():
            if not filter_matches(subscription.topic_filter, topic):
                continue
            if own and subscription.options.no_local:
                skipped = True
                continue
            qos = max(qos, subscription.options.qos)
            retain_as_published |= subscription.options.retain_as_published
            if subscription.identifier is not None:
                identifiers.append(subscription.identifier)
        if qos < 0 and (skipped or topic.startswith("$")):
            return None  # (a '$' topic only for filters that name it [MQTT-4.7.2-1])
        if qos < 0:  # bound by another route (an AMQP binding to this queue)
            qos = max((s.options.qos for s in self.by_filter.values()), default=0)
        return Match(qos, tuple(identifiers), retain_as_published)


def shared_queue_name(group: str, topic_filter: str) -> str:
    """The queue of a shared subscription: one per share name and filter, consumed by
    every session subscribed to it, which the queue serves in turn (§4.8.2)."""
    return f"mqtt-shared-{group}-{convert.routing_key(topic_filter)}"
