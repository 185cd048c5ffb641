"""Outbound messages of one MQTT session: its core consumer and the QoS 1/2 flows.

The session's queue hands messages to :class:`MQTTConsumer`; each goes out at
the lower of its published QoS and the highest QoS granted by the matching
subscriptions ([MQTT-3.3.5-1]). QoS 0 deliveries are acknowledged to the queue
at once; QoS 1 ones on PUBACK; QoS 2 ones on PUBREC (the client has the
message), their packet id kept until PUBCOMP ([MQTT-4.3.3-9]). At most
``limit`` deliveries are unacknowledged (the inflight limit, lowered to a 5.0
client's receive maximum [MQTT-3.3.4-7]). What is unacknowledged when the
connection ends goes back to the queue, and is sent with DUP when the
persistent session's client is back ([MQTT-4.4.0-1]).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pigeon.core.consumer import Consumer
from pigeon.protocols.mqtt import convert
from pigeon.protocols.mqtt.codec import encode
from pigeon.protocols.mqtt.encoding import encode_publish
from pigeon.protocols.mqtt.packets import MQTT_5, Pubrel
from pigeon.protocols.mqtt.properties import NO_PROPERTIES, Properties
from pigeon.protocols.mqtt.subscriptions import Match

if TYPE_CHECKING:
    from pigeon.core.message import Message
    from pigeon.core.ports import Scheduler
    from pigeon.core.queue import Entry, Queue
    from pigeon.protocols.mqtt.sessions import SessionState
    from pigeon.protocols.mqtt.subscriptions import Subscription, Subscriptions

# Payload bytes one session sends in one turn at most; more once they are written.
TURN_OUTPUT = 1 << 20
_tags = itertools.count(1)
_UNKNOWN: Any = object()  # (a packet id not in flight)
# How a message goes out to a session (Outbound._plan): the message's properties it was
# worked out for, topic (None: not sent), QoS, RETAIN, subscription identifiers.
_Plan = tuple[Any, str | None, int, bool, tuple[int, ...]]


class Outbound:
    """Deliveries in flight to one client, by packet id."""

    def __init__(
        self,
        version: int,
        state: SessionState,
        subscriptions: Subscriptions,
        write: Callable[[bytes], None],
        scheduler: Scheduler,
        limit: int,
        maximum_packet_size: int | None = None,
        alias_maximum: int = 0,
    ) -> None:
        self.version = version
        self.state = state
        self.subscriptions = subscriptions
        self.write = write  # encoded packets, to the connection's output
        # The client's Maximum Packet Size (5.0): larger messages are not sent [MQTT-3.1.2-25].
        self.maximum_packet_size = maximum_packet_size
        self.scheduler = scheduler
        self.limit = limit
        # packet id -> the queue entry it delivers (None: a retained message)
        self.inflight: dict[int, tuple[Entry, Queue] | None] = {}
        # Acknowledged this turn, for their queues at its end (settle).
        self.settled: list[tuple[Entry, Queue]] = []
        # packet id -> the retained message it delivers (QoS 1/2, not acknowledged)
        self.retained: dict[int, tuple[str, Message, Subscription]] = {}
        self.next_id = 1
        # Ids kept for deliveries of an earlier connection that go out again.
        self.reserved = set(state.resend_ids.values())
        self.turn_bytes = 0
        # Topic aliases we set for the client, up to its Topic Alias Maximum (5.0).
        self.aliases = TopicAliases(alias_maximum)
        self.paused = False  # the transport's buffer is full
        self.starved = False  # stopped at TURN_OUTPUT: dispatch again once written
        # Taken from queues and acknowledged to them, for the per-protocol metrics.
        self.delivered = 0
        self.acked = 0

    def room(self) -> int:
        if self.paused:
            return 0
        if self.turn_bytes >= TURN_OUTPUT:
            self.starved = True
            return 0
        return self.limit - len(self.inflight) - len(self.state.awaiting_complete)

    def resend_releases(self) -> None:
        """A resumed session: PUBREL again for what waited for PUBCOMP [MQTT-4.4.0-1]."""
        for packet_id in sorted(self.state.awaiting_complete):
            self.write(encode(Pubrel(packet_id), self.version))

    def _packet_id(self) -> int:
        used_a, used_b, used_c = self.inflight, self.state.awaiting_complete, self.reserved
        packet_id = self.next_id
        while packet_id in used_a or packet_id in used_b or packet_id in used_c:
            packet_id = packet_id % 65_535 + 1
        self.next_id = packet_id % 65_535 + 1
        return packet_id

    def _resend_id(self, source: tuple[Entry, Queue] | None) -> int | None:
        """The packet id this message had when the previous connection ended, if any."""
        if source is None or not self.reserved:
            return None
        entry, queue = source
        packet_id = self.state.resend_ids.pop((queue.name, entry.seq), None)
        if packet_id is None:
            return None
        self.reserved.discard(packet_id)
        if packet_id in self.inflight or packet_id in self.state.awaiting_complete:
            return None
        return packet_id

    def deliver(self, queue: Queue, entry: Entry, shared: Subscription | None = None) -> None:
        self.deliver_many(queue, (entry,), shared)

    def deliver_many(
        self, queue: Queue, entries: Sequence[Entry], shared: Subscription | None = None
    ) -> None:
        """A batch from the queue: what each message's topic matches is worked out once per
        routing key and properties (a publisher's plain messages share theirs), and the
        QoS 0 ones are acknowledged to the queue together."""
        self.delivered += len(entries)
        plans: dict[tuple[str, int], _Plan] = {}
        done: list[Entry] = []  # QoS 0 (acknowledged as sent) and skipped ones
        publish = self._publish
        for entry in entries:
            message = entry.message
            properties = message.properties
            plan = plans.get((message.routing_key, id(properties)))
            if plan is None or plan[0] is not properties:
                plan = self._plan(message, shared)
                plans[(message.routing_key, id(properties))] = plan
            _, topic, qos, retain, identifiers = plan
            if topic is None:  # the session's own message, for No Local subscriptions only
                done.append(entry)
                continue
            publish(topic, message, qos, retain, entry.redelivered, identifiers, (entry, queue))
            if not qos:
                done.append(entry)
        if done:
            self.acked += len(done)
            queue.ack_many(done)

    def _plan(self, message: Message, shared: Subscription | None) -> _Plan:
        """How a message goes out to this session: its topic (None: not at all), QoS,
        RETAIN flag and subscription identifiers."""
        properties = message.properties
        topic = convert.topic(message.routing_key)
        if shared is not None:  # a shared subscription's own queue: its options alone
            ids = () if shared.identifier is None else (shared.identifier,)
            match: Match | None = Match(shared.options.qos, ids, shared.options.retain_as_published)
        else:
            own = convert.publisher(message) == self.state.client_id
            match = self.subscriptions.match(topic, own=own)
        if match is None:
            return (properties, None, 0, False, ())
        qos = min(convert.published_qos(message), match.qos)
        # RETAIN=0 on what a subscription gets as it is published, unless Retain As
        # Published [MQTT-3.3.1-12, 13].
        retain = match.retain_as_published and convert.was_retained(message)
        return (properties, topic, qos, retain, match.identifiers)

    def send_retained(
        self, topic: str, message: Message, subscription: Subscription, *, dup: bool = False
    ) -> None:
        """A retained message for a new subscription (from no queue: a QoS 1/2 one not
        acknowledged when the connection ends is kept by the session, and sent again with
        DUP when its client is back [MQTT-4.4.0-1])."""
        qos = min(convert.published_qos(message), subscription.options.qos)
        identifiers = () if subscription.identifier is None else (subscription.identifier,)
        packet_id = self._publish(topic, message, qos, True, dup, identifiers, None)
        if packet_id is not None:
            self.retained[packet_id] = (topic, message, subscription)

    def resend_retained(self) -> None:
        """A resumed session: the retained QoS 1/2 messages its client did not acknowledge."""
        pending, self.state.retained = self.state.retained, []
        for topic, message, subscription in pending:
            self.send_retained(topic, message, subscription, dup=True)

    def _publish(
        self,
        topic: str,
        message: Message,
        qos: int,
        retain: bool,
        redelivered: bool,
        identifiers: tuple[int, ...],
        source: tuple[Entry, Queue] | None,
    ) -> int | None:
        """Send (the packet id of a QoS 1/2 one in flight; None: QoS 0, or not sent)."""
        packet_id = None
        if qos:
            packet_id = self._resend_id(source) or self._packet_id()
            self.inflight[packet_id] = source
        properties = NO_PROPERTIES
        if self.version == MQTT_5:
            properties = convert.mqtt_properties(message, now=self.scheduler.time())
            if identifiers:
                properties = replace(properties, subscription_identifiers=identifiers)
            if self.aliases.maximum:
                topic, properties = self.aliases.apply(topic, properties)
        data = encode_publish(
            topic,
            message.body,
            qos,
            packet_id,
            self.version,
            dup=bool(qos) and redelivered,
            retain=retain,
            properties=properties,
        )
        if self.maximum_packet_size is not None and len(data) > self.maximum_packet_size:
            # Discarded as if sent, acknowledged at once [MQTT-3.1.2-25].
            if topic and properties.topic_alias is not None:
                self.aliases.by_topic.pop(topic, None)  # the client never saw it
            if packet_id is not None:
                del self.inflight[packet_id]
            if source is not None and not qos:
                return None  # (deliver acks QoS 0 itself)
            if source is not None:
                self.acked += 1
                source[1].ack_many((source[0],))
            return None
        self.turn_bytes += len(message.body)
        self.write(data)
        return packet_id

    def acknowledged(self, packet_id: int, *, released: bool) -> bool:
        """PUBACK (``released``: the QoS 1 flow ends) or PUBREC (QoS 2: PUBCOMP to come).
        False if the packet id is unknown. The queue hears of it in :meth:`settle`."""
        taken = self.inflight.pop(packet_id, _UNKNOWN)
        if taken is _UNKNOWN:
            return False
        if taken is None:
            self.retained.pop(packet_id, None)
        if not released:
            self.state.awaiting_complete.add(packet_id)
            self.state.changed()
        if taken is not None:  # (None: a retained message, from no queue)
            self.settled.append(taken)
        return True

    def settle(self) -> None:
        """The end of a turn: the acknowledgements it read go to their queues, one call
        per queue, and each queue hands over what the room they made lets through."""
        settled = self.settled
        if not settled:
            return
        self.settled = []
        self.acked += len(settled)
        first_queue = settled[0][1]
        if all(queue is first_queue for _, queue in settled):
            first_queue.ack_many([entry for entry, _ in settled])
            first_queue.dispatch()
            return
        by_queue: dict[Queue, list[Entry]] = {}
        for entry, queue in settled:
            by_queue.setdefault(queue, []).append(entry)
        for queue, entries in by_queue.items():
            queue.ack_many(entries)
        for queue in by_queue:
            queue.dispatch()

    def completed(self, packet_id: int) -> None:
        """PUBCOMP: the QoS 2 delivery is over. One for an id not awaiting it (a second
        PUBCOMP after a PUBREL sent again on reconnect) is ignored, as an unknown PUBACK is
        and as Mosquitto and RabbitMQ do: closing the connection would help no one."""
        self.state.awaiting_complete.discard(packet_id)
        self.state.changed()

    def requeue_all(self) -> None:
        """The connection ended: what was not acknowledged goes back to its queue."""
        self.settle()
        by_queue: dict[Queue, list[Entry]] = {}
        for packet_id, taken in self.inflight.items():
            if taken is not None:
                entry, queue = taken
                by_queue.setdefault(queue, []).append(entry)
                self.state.resend_ids[(queue.name, entry.seq)] = packet_id
        self.inflight.clear()
        self.state.retained.extend(self.retained.values())
        self.retained.clear()
        for queue, entries in by_queue.items():
            queue.requeue(entries)


class TopicAliases:
    """Server-to-client topic aliases (§3.3.2.3.4): a topic the session delivers again
    gets an alias while the client's Topic Alias Maximum allows; the PUBLISH that sets it
    carries the topic, later ones the alias alone [MQTT-3.3.2-12]. (A topic delivered once
    gets none, so one-off topics do not take the few aliases a client allows.)"""

    SEEN = 4096  # topics counted at most before the count starts again

    __slots__ = ("by_topic", "maximum", "seen")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.by_topic: dict[str, int] = {}
        self.seen: set[str] = set()

    def apply(self, topic: str, properties: Properties) -> tuple[str, Properties]:
        alias = self.by_topic.get(topic)
        if alias is not None:
            return "", replace(properties, topic_alias=alias)
        if len(self.by_topic) >= self.maximum:
            return topic, properties
        if topic not in self.seen:
            if len(self.seen) >= self.SEEN:
                self.seen.clear()
            self.seen.add(topic)
            return topic, properties
        self.seen.discard(topic)
        alias = self.by_topic[topic] = len(self.by_topic) + 1
        return topic, replace(properties, topic_alias=alias)


class MQTTConsumer(Consumer):
    """The core consumer of a session's queue."""

    __slots__ = ("gone", "outbound", "shared")

    def __init__(
        self,
        outbound: Outbound,
        owner: object,
        gone: Callable[[], None],
        shared: Subscription | None = None,
    ) -> None:
        super().__init__(f"mqtt-{next(_tags)}", owner=owner)
        self.outbound = outbound
        self.gone = gone
        self.shared = shared  # the shared subscription whose queue this consumes

    def can_deliver(self) -> bool:
        return self.outbound.room() > 0

    def room(self) -> int:
        return max(0, self.outbound.room())

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.outbound.deliver_many(queue, (entry,), self.shared)

    def deliver_many(self, queue: Queue, entries: list[Entry]) -> None:
        self.outbound.deliver_many(queue, entries, self.shared)

    def cancelled_by_broker(self) -> None:
        self.gone()
