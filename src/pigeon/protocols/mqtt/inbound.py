"""PUBLISH, PUBREL, SUBSCRIBE and UNSUBSCRIBE from a client, through the operations layer.

PUBLISH: QoS 0 is routed; QoS 1 is answered with PUBACK once routed (and on
disk: see ``MQTTSession._send_acks``); QoS 2 with PUBREC, its packet id kept
until PUBREL so that a PUBLISH sent again with DUP is not routed twice
([MQTT-4.3.3-10]). A publish the user may not make: 3.1.1 closes the
connection (it has no way to say so); 5.0 answers PUBACK/PUBREC 0x87, or
DISCONNECT 0x87 at QoS 0 (RabbitMQ 3.13's answers).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from pigeon.core.binding import DestinationKind
from pigeon.errors import AccessRefused, PigeonError, ResourceLimit
from pigeon.protocols.mqtt import convert
from pigeon.protocols.mqtt.delivery import MQTTConsumer
from pigeon.protocols.mqtt.opening import ensure_queue
from pigeon.protocols.mqtt.packets import (
    MQTT_5,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
)
from pigeon.protocols.mqtt.properties import NO_PROPERTIES
from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode, protocol_error
from pigeon.protocols.mqtt.subscriptions import Subscription, shared_queue_name
from pigeon.protocols.mqtt.topics import check_topic_name, parse_filter

if TYPE_CHECKING:
    from pigeon.core.exchange import Exchange
    from pigeon.protocols.mqtt.session import MQTTSession

log = logging.getLogger("pigeon.mqtt")

# Topics a session remembers as checked for publishing (see _remember).
PUBLISH_CHECKS_KEPT = 16


def _answer(session: MQTTSession, publish: Publish, reason: ReasonCode) -> Packet:
    assert publish.packet_id is not None
    if session.version != MQTT_5:
        reason = ReasonCode.SUCCESS
    if publish.qos == 1:
        return Puback(publish.packet_id, reason)
    return Pubrec(publish.packet_id, reason)


def publish(session: MQTTSession, packet: Publish) -> None:
    client, state = session.client, session.state
    assert client is not None and state is not None
    if packet.properties.topic_alias is not None:
        packet = _unalias(session, packet)
    exchange = session.settings.exchange
    checked = session.publish_checks.get(packet.topic)
    if checked is None or client.vhost.exchanges.get(exchange) is not checked[1]:
        check_topic_name(packet.topic, session.settings.topic_limits)
        checked = None
    qos = packet.qos
    if qos == 2 and packet.packet_id in state.awaiting_release:
        session.acks.append(_answer(session, packet, ReasonCode.SUCCESS))  # a resend: once only
        return
    if qos and _unanswered(session, qos) >= session.settings.receive_maximum:
        # More QoS 1/2 publishes unanswered (no PUBACK or PUBCOMP sent) than our Receive
        # Maximum [MQTT-3.3.4-9].
        raise ProtocolViolation(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded")
    if checked is None:
        key = convert.routing_key(packet.topic)
        try:
            target = client.publish_target(exchange, key, None)
        except AccessRefused as error:
            if session.version != MQTT_5 or qos == 0:
                raise ProtocolViolation(ReasonCode.NOT_AUTHORIZED, error.text) from None
            session.send(_answer(session, packet, ReasonCode.NOT_AUTHORIZED))
            return
        _remember(session.publish_checks, packet.topic, (key, target))
    else:
        key, target = checked
    try:
        message = session.publisher.message(packet, exchange, key)
    except PigeonError as error:
        raise ProtocolViolation(ReasonCode.PAYLOAD_FORMAT_INVALID, error.text) from None
    reason = ReasonCode.SUCCESS
    if packet.retain:
        try:
            client.retain(packet.topic, message)  # an empty payload clears [MQTT-3.3.1-6]
        except ResourceLimit:
            reason = ReasonCode.QUOTA_EXCEEDED  # routed all the same, not retained
    routed, refused = client.vhost.publish(message, target)
    session.published = True
    if qos == 0:
        return
    if refused:  # a full queue with reject-publish overflow
        if session.version == MQTT_5:
            _acknowledge(session, packet, ReasonCode.QUOTA_EXCEEDED)
        return  # 3.1.1 cannot say no: no PUBACK, the client sends it again later
    if qos == 2:
        assert packet.packet_id is not None
        state.awaiting_release.add(packet.packet_id)
        state.changed()  # on disk with the message, before the PUBREC goes out
    if reason == ReasonCode.SUCCESS and not routed:
        reason = ReasonCode.NO_MATCHING_SUBSCRIBERS
    _acknowledge(session, packet, reason)


def _acknowledge(session: MQTTSession, packet: Publish, reason: ReasonCode) -> None:
    """PUBACK/PUBREC once what the publish wrote is on disk (``MQTTSession._send_acks``)."""
    if packet.qos == 1:
        session.answering += 1  # until its PUBACK goes out
    session.acks.append(_answer(session, packet, reason))


def _unanswered(session: MQTTSession, qos: int) -> int:
    """QoS 2 publishes not released, and, for 5.0 (3.1.1 has no Receive Maximum to
    exceed), QoS 1 ones whose PUBACK waits (for the disk)."""
    state = session.state
    assert state is not None
    if session.version == MQTT_5:
        return len(state.awaiting_release) + session.answering
    return len(state.awaiting_release) if qos == 2 else 0


def plain_run(pending: list[Packet], start: int, end: int) -> int:
    """Where the run of plain publishes (QoS 0 or 1, one topic, no RETAIN, no
    properties) starting at ``pending[start]`` ends, looking no further than ``end``;
    ``start`` itself if that packet is no plain publish."""
    first = pending[start]
    if not _plain(first):
        return start
    topic = cast(Publish, first).topic
    index = start + 1
    while index < end:
        packet = pending[index]
        if not _plain(packet) or cast(Publish, packet).topic != topic:
            break
        index += 1
    return index


def _plain(packet: Packet) -> bool:
    if type(packet) is not Publish:
        return False
    return packet.qos < 2 and not packet.retain and packet.properties is NO_PROPERTIES


def publish_run(session: MQTTSession, packets: list[Publish]) -> None:
    """Plain publishes to one topic (see :func:`plain_run`), as AMQP's publish runs:
    checked once, routed once, enqueued together. What the core cannot take as a run
    (a queue with limits or a TTL, nothing routed) goes one publish at a time."""
    client = session.client
    assert client is not None
    first = packets[0]
    publish(session, first)  # the checks, and the session's remembering of them
    if session.ended or len(packets) == 1:
        return
    exchange = session.settings.exchange
    checked = session.publish_checks.get(first.topic)
    target = client.vhost.exchanges.get(exchange)
    if checked is None or target is not checked[1]:
        for packet in packets[1:]:
            publish(session, packet)
        return
    if session.version == MQTT_5 and (
        _unanswered(session, 1) + len(packets) >= session.settings.receive_maximum
    ):  # the Receive Maximum is checked publish by publish [MQTT-3.3.4-9]
        for packet in packets[1:]:
            publish(session, packet)
        return
    make = session.publisher.message
    key = checked[0]
    rest = packets[1:]
    messages = [make(packet, exchange, key) for packet in rest]
    if not client.vhost.publish_run(messages, target):
        for packet in rest:
            publish(session, packet)
        return
    for packet in rest:
        if packet.qos:
            _acknowledge(session, packet, ReasonCode.SUCCESS)


def _remember(
    checks: dict[str, tuple[str, Exchange]], topic: str, checked: tuple[str, Exchange]
) -> None:
    """A topic whose publish passed every check, kept for the session's next publishes to
    it: a few topics (RabbitMQ's MQTT connections cache their last 12 permission checks),
    so a publisher to many topics pays the checks each time."""
    if len(checks) >= PUBLISH_CHECKS_KEPT:
        checks.clear()
    checks[topic] = checked


def _unalias(session: MQTTSession, packet: Publish) -> Publish:
    """A 5.0 Topic Alias: set by a PUBLISH with a topic, used by one without (§3.3.2.3.4)."""
    alias = packet.properties.topic_alias
    assert alias is not None
    if not 1 <= alias <= session.settings.topic_alias_maximum:
        raise ProtocolViolation(ReasonCode.TOPIC_ALIAS_INVALID, f"topic alias {alias}")
    if packet.topic:
        session.topic_aliases[alias] = packet.topic
        return packet
    topic = session.topic_aliases.get(alias)
    if topic is None:
        raise protocol_error(f"topic alias {alias} was never set")
    return replace(packet, topic=topic)


def release(session: MQTTSession, packet_id: int) -> None:
    """PUBREL: the QoS 2 publish is over; its packet id may be used again."""
    state = session.state
    assert state is not None
    if packet_id in state.awaiting_release:
        state.awaiting_release.discard(packet_id)
        state.changed()
        reason = ReasonCode.SUCCESS
    else:
        reason = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
    if session.version != MQTT_5:
        reason = ReasonCode.SUCCESS
    # Behind the PUBREC it answers, which may wait for the disk.
    session.acks.append(Pubcomp(packet_id, reason))


def subscribe(session: MQTTSession, packet: Subscribe) -> None:
    client, subscriptions = session.client, session.subscriptions
    assert client is not None and subscriptions is not None
    identifiers = packet.properties.subscription_identifiers
    identifier = identifiers[0] if identifiers else None
    codes: list[ReasonCode] = []
    retained: list[Subscription] = []
    for topic_filter, options in packet.subscriptions:
        try:
            matched, shared = parse_filter(
                topic_filter,
                session.settings.topic_limits,
                shared_allowed=session.version == MQTT_5,
            )
            granted = SubscriptionOptions(
                qos=min(options.qos, 2),
                no_local=options.no_local,
                retain_as_published=options.retain_as_published,
                retain_handling=options.retain_handling,
            )
            if shared is not None:  # no retained messages for these (§4.8.2)
                _subscribe_shared(session, topic_filter, shared.group, matched, granted, identifier)
                codes.append(ReasonCode(granted.qos))
                continue
            ensure_queue(session)
            subscription = Subscription(topic_filter, granted, identifier)
            new = subscriptions.add(client, subscription)
            codes.append(ReasonCode(granted.qos))
            if granted.retain_handling == 0 or (granted.retain_handling == 1 and new):
                retained.append(subscription)
        except ProtocolViolation as violation:
            codes.append(violation.reason)
        except AccessRefused:
            codes.append(ReasonCode.NOT_AUTHORIZED)  # 3.1.1: 0x80
        except PigeonError as error:
            log.info("subscription to %r refused: %s", topic_filter, error.text)
            codes.append(ReasonCode.UNSPECIFIED_ERROR)
    session.send(Suback(packet.packet_id, tuple(codes)))
    for subscription in retained:
        _send_retained(session, subscription)  # after the SUBACK [MQTT-3.3.1-9]
    if session.queue is not None:
        session.queue.dispatch()


def _subscribe_shared(
    session: MQTTSession,
    topic_filter: str,
    group: str,
    matched: str,
    granted: SubscriptionOptions,
    identifier: int | None,
) -> None:
    """``$share/group/filter``: the sessions of a group consume one queue, bound to the
    filter, and the queue hands each message to one of them (§4.8.2)."""
    client, outbound = session.client, session.outbound
    assert client is not None and outbound is not None
    name = shared_queue_name(group, matched)
    _declare_shared(session, name)
    subscription = Subscription(matched, granted, identifier)
    client.bind(
        session.settings.exchange,
        name,
        DestinationKind.QUEUE,
        convert.routing_key(matched),
        subscription.arguments(),
    )
    state = session.state
    assert state is not None
    state.shared[topic_filter] = subscription
    state.changed()  # a persistent session makes it again when it resumes
    existing = session.shared.get(topic_filter)
    if existing is not None:
        existing.shared = subscription  # new options for the same subscription
        return
    queue = client.queue_to_read(name)

    def gone() -> None:
        session.shared.pop(topic_filter, None)

    consumer = MQTTConsumer(outbound, session, gone, subscription)
    session.shared[topic_filter] = client.consume(queue, consumer)
    queue.dispatch()


def _declare_shared(session: MQTTSession, name: str) -> None:
    """The group's queue, as its first member needs it: a clean session's goes with its
    last consumer; a persistent session's is durable and waits for the group as the
    session's own queue waits (``x-expires``). An existing queue is used as it is."""
    client = session.client
    assert client is not None
    if name in client.vhost.queues:
        return
    if session.session_expiry:
        arguments = {"x-expires": session.session_expiry * 1000}
        client.declare_queue(name, durable=True, arguments=arguments)
    else:
        client.declare_queue(name, auto_delete=True)


def resume_shared(session: MQTTSession) -> None:
    """A resumed persistent session's shared subscriptions, made again (§4.8.2)."""
    state = session.state
    assert state is not None
    for topic_filter, subscription in list(state.shared.items()):
        try:
            matched, shared = parse_filter(topic_filter, shared_allowed=True)
            assert shared is not None
            _subscribe_shared(
                session,
                topic_filter,
                shared.group,
                matched,
                subscription.options,
                subscription.identifier,
            )
        except (ProtocolViolation, PigeonError) as error:
            log.info("shared subscription %r not resumed: %s", topic_filter, error)


def _send_retained(session: MQTTSession, subscription: Subscription) -> None:
    """The retained messages a new subscription matches, with RETAIN=1 [MQTT-3.3.1-8]."""
    client, outbound = session.client, session.outbound
    assert client is not None and outbound is not None
    topic_filter = subscription.topic_filter
    try:
        found = client.retained(
            topic_filter,
            exchange=session.settings.exchange,
            binding_key=convert.routing_key(topic_filter),
        )
    except AccessRefused:
        return
    for topic, message in found:
        outbound.send_retained(topic, message, subscription)


def unsubscribe(session: MQTTSession, packet: Unsubscribe) -> None:
    client, subscriptions = session.client, session.subscriptions
    assert client is not None and subscriptions is not None
    codes: list[ReasonCode] = []
    for topic_filter in packet.topic_filters:
        shared = session.shared.pop(topic_filter, None)
        state = session.state
        if state is not None and topic_filter in state.shared:
            del state.shared[topic_filter]
            state.changed()
        if shared is not None:
            if shared.queue is not None:
                shared.queue.remove_consumer(shared)
            codes.append(ReasonCode.SUCCESS)
            continue
        try:
            found = subscriptions.remove(client, topic_filter)
            codes.append(ReasonCode.SUCCESS if found else ReasonCode.NO_SUBSCRIPTION_EXISTED)
        except AccessRefused:
            codes.append(ReasonCode.NOT_AUTHORIZED)
        except PigeonError:
            codes.append(ReasonCode.UNSPECIFIED_ERROR)
    session.send(Unsuback(packet.packet_id, tuple(codes) if session.version == MQTT_5 else ()))
