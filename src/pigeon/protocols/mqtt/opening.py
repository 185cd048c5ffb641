"""A session's start after its login, and its end: vhost, takeover, queue, will.

Start: the vhost must let the user in (else CONNACK 0x87 / 3.1.1 0x05); the
client id is claimed (an earlier connection with it is taken over); a clean
session drops what an earlier one left, a persistent one resumes its queue and
subscriptions. End: deliveries in flight go back to the queue, a clean
session's queue goes, and the will is published unless the client said
DISCONNECT (5.0: after its delay, unless the client is back by then).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pigeon.errors import AccessRefused, NotAllowed, PigeonError
from pigeon.operations.client import Client
from pigeon.protocols.mqtt import convert
from pigeon.protocols.mqtt.delivery import Outbound
from pigeon.protocols.mqtt.packets import MQTT_5, Connack, Connect, Publish, Will
from pigeon.protocols.mqtt.properties import NO_PROPERTIES
from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode, protocol_error
from pigeon.protocols.mqtt.subscriptions import Subscriptions, queue_name

if TYPE_CHECKING:
    from pigeon.auth.authorization import Identity
    from pigeon.core.queue import Queue
    from pigeon.core.vhost import VirtualHost
    from pigeon.protocols.mqtt.session import MQTTSession
    from pigeon.protocols.mqtt.sessions import SessionState

log = logging.getLogger("pigeon.mqtt")


def _session_expiry(session: MQTTSession) -> int:
    """Seconds the session outlives the connection: 5.0's Session Expiry Interval; 3.1.1:
    none for a clean session, else the broker's maximum (RabbitMQ's rule)."""
    connect = session.connect
    assert connect is not None
    maximum = session.settings.max_session_expiry
    if connect.protocol_level == MQTT_5:
        return min(connect.properties.session_expiry_interval or 0, maximum)
    return 0 if connect.clean_start else maximum


def open_session(session: MQTTSession, identity: Identity) -> None:
    connect, login = session.connect, session.login
    assert connect is not None and login is not None
    context = session.context
    services = context.services
    check_keepalive(connect, context.settings.max_keepalive)
    vhost = _admit(session, identity)
    session._counted = True
    session.identity = identity
    _watch_credential(session, identity)
    client = session.client = Client(services, vhost, identity, owner=session)
    registry = context.registry
    registry.claim(login.vhost, login.client_id, session)
    session.session_expiry = expiry = _session_expiry(session)
    clean = connect.clean_start
    state, kept = registry.state(login.vhost, login.client_id, clean=clean)
    state.expiry = expiry
    state.changed()  # (a kept document says the new expiry, or goes with expiry 0)
    session.state = state
    session.publisher = convert.Publisher(login.client_id)
    name = queue_name(login.client_id)
    existing = vhost.queues.get(name)
    if clean and existing is not None:
        try:
            client.delete_queue(name)
        except PigeonError as error:
            raise ProtocolViolation(ReasonCode.NOT_AUTHORIZED, error.text) from None
        existing = None
    subscriptions = session.subscriptions = Subscriptions(
        context.settings.exchange, login.client_id
    )
    session.outbound = outbound = _outbound(session, state, subscriptions)
    session.will = connect.will
    session.keepalive_seconds, server_keepalive = _keepalive(session)
    session.decoder.maximum_packet_size = context.settings.maximum_packet_size
    present = not clean and (existing is not None or kept)
    properties = NO_PROPERTIES
    if session.version == MQTT_5:
        properties = session.server_properties(
            login.client_id if login.assigned else None, server_keepalive
        )
    session.send(Connack(present, ReasonCode.SUCCESS, properties))
    session.opened()
    log.debug("MQTT session %r of %s (expiry %d s)", login.client_id, identity.name, expiry)
    outbound.resend_releases()
    outbound.resend_retained()
    if existing is not None:
        subscriptions.restore(existing, client)
        session.start_consuming(existing)


def _watch_credential(session: MQTTSession, identity: Identity) -> None:
    """A token login lasts as long as its token: then the connection is closed, its will
    published (as RabbitMQ closes it; 5.0 is told 0xA0 Maximum connect time first)."""
    if identity.expires_at is None:
        return

    def expired() -> None:
        session.credential_timer = None
        if not session.ended:
            log.info("token of %r on %s expired, closing", identity.name, session.peer)
            session.close(ReasonCode.MAXIMUM_CONNECT_TIME)

    delay = max(0.0, identity.expires_at - time.time())
    session.credential_timer = session.context.scheduler.call_later(delay, expired)


def check_keepalive(connect: Connect, maximum: int) -> None:
    """A 3.1.1 client cannot be told a lower keep-alive: one above the broker's
    maximum is refused (CONNACK 0x02, as Mosquitto's ``max_keepalive``)."""
    if maximum and connect.protocol_level != MQTT_5 and connect.keepalive > maximum:
        raise ProtocolViolation(
            ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, f"keep-alive above {maximum} s"
        )


def _keepalive(session: MQTTSession) -> tuple[int, int | None]:
    """The keep-alive the session uses, and the Server Keep Alive a 5.0 CONNACK says
    when the broker's maximum (``mqtt_max_keepalive``) lowered it (0, none, too)."""
    connect = session.connect
    assert connect is not None
    maximum = session.settings.max_keepalive
    asked = connect.keepalive
    if maximum and connect.protocol_level == MQTT_5 and (asked == 0 or asked > maximum):
        return maximum, maximum  # [MQTT-3.1.2-21]
    return asked, None


def change_expiry(session: MQTTSession, expiry: int) -> None:
    """A 5.0 DISCONNECT's Session Expiry Interval replaces the CONNECT's; a session that
    was to end with its connection may not be made to outlive it [MQTT-3.14.2-2]."""
    if not session.session_expiry and expiry:
        raise protocol_error("session expiry set by DISCONNECT after 0 at CONNECT")
    expiry = min(expiry, session.settings.max_session_expiry)
    if session.session_expiry and not expiry:
        session.drop_queue = True  # the session ends now: its durable queue goes too
    session.session_expiry = expiry
    if session.state is not None:
        session.state.expiry = expiry
        session.state.changed()


def _admit(session: MQTTSession, identity: Identity) -> VirtualHost:
    """The vhost the user may use, counted against its connection limits."""
    login = session.login
    assert login is not None
    services = session.context.services
    vhost = services.node.vhosts.get(login.vhost)
    try:
        if vhost is None:
            raise NotAllowed(f"vhost {login.vhost} not found")
        services.authenticator.check_vhost(identity, login.vhost)
    except NotAllowed as error:
        raise ProtocolViolation(ReasonCode.NOT_AUTHORIZED, error.text) from None
    try:
        services.limits.open(login.vhost, identity.name)
    except NotAllowed as error:
        raise ProtocolViolation(ReasonCode.QUOTA_EXCEEDED, error.text) from None
    return vhost


def _outbound(session: MQTTSession, state: SessionState, subscriptions: Subscriptions) -> Outbound:
    connect = session.connect
    assert connect is not None
    settings = session.context.settings
    limit = settings.inflight
    if connect.protocol_level == MQTT_5 and connect.properties.receive_maximum:
        limit = min(limit, connect.properties.receive_maximum)  # [MQTT-3.3.4-9]
    return Outbound(
        session.version,
        state,
        subscriptions,
        session.write,
        session.context.scheduler,
        limit,
        connect.properties.maximum_packet_size,
        # Ours caps it, as RabbitMQ's mqtt.topic_alias_maximum does both ways (3.1.1: none).
        min(connect.properties.topic_alias_maximum or 0, settings.topic_alias_maximum),
    )


def ensure_queue(session: MQTTSession) -> Queue:
    """The session's queue, declared at its first subscription (as RabbitMQ does)."""
    client, subscriptions = session.client, session.subscriptions
    assert client is not None and subscriptions is not None
    if session.queue is not None:
        return session.queue
    name = subscriptions.queue_name
    settings = session.settings
    arguments: dict[str, object] = {}
    if settings.max_queued:  # bounded, by the configured overflow mode
        arguments = {"x-max-length": settings.max_queued, "x-overflow": settings.queue_overflow}
    if session.session_expiry:
        arguments["x-expires"] = session.session_expiry * 1000
        declared = client.declare_queue(name, durable=True, arguments=arguments)
    else:
        declared = client.declare_queue(
            name, exclusive=True, auto_delete=False, arguments=arguments or None
        )
    queue = client.queue_to_read(declared.queue.name)
    session.start_consuming(queue)
    return queue


def close_session(session: MQTTSession, *, will: bool) -> None:
    if session.credential_timer is not None:
        session.credential_timer.cancel()
        session.credential_timer = None
    outbound, consumer, queue = session.outbound, session.consumer, session.queue
    if outbound is not None:
        outbound.paused = True  # nothing more for this connection
        outbound.requeue_all()
    if consumer is not None and queue is not None:
        queue.remove_consumer(consumer)
    session.consumer = session.queue = None
    if session.drop_queue and session.client is not None and session.subscriptions is not None:
        try:
            session.client.delete_queue(session.subscriptions.queue_name)
        except PigeonError as error:
            log.info("queue of MQTT session %s kept: %s", session.peer, error.text)
    shared, session.shared = session.shared, {}
    for one in shared.values():
        if one.queue is not None:
            one.queue.remove_consumer(one)  # (its queue goes with its last consumer)
    client, login, state = session.client, session.login, session.state
    if client is None or login is None:
        return
    client.vhost.delete_owned_by(session)
    registry = session.context.registry
    if state is not None:
        state.flush()
    registry.release(login.vhost, login.client_id, session)
    if state is not None and not session.session_expiry:
        registry.forget(state)
    elif state is not None and registry.owners.get((login.vhost, login.client_id)) is None:
        # Kept until the session expires (its queue expires by x-expires then too).
        state.expiry_timer = session.context.scheduler.call_later(
            session.session_expiry, lambda: registry.forget(state)
        )
    if will and session.will is not None:
        _schedule_will(session, session.will)
    if session._counted:
        session._counted = False
        assert session.identity is not None
        services = session.context.services
        services.limits.close(login.vhost, session.identity.name)
        if services.audit is not None:
            services.audit.connection_closed(session.peer, session.identity.name)


def _schedule_will(session: MQTTSession, will: Will) -> None:
    """Publish now, or after the will delay if the session outlives the connection:
    whichever of the delay and the session's end comes first [MQTT-3.1.3-9]."""
    delay = will.properties.will_delay_interval or 0
    delay = min(delay, session.session_expiry)
    state = session.state
    if delay <= 0 or state is None:
        publish_will(session, will)
        return

    def due() -> None:
        state.will_timer = None
        publish_will(session, will)

    state.will_timer = session.context.scheduler.call_later(delay, due)


def publish_will(session: MQTTSession, will: Will) -> None:
    client = session.client
    assert client is not None
    packet = Publish(will.topic, will.payload, will.qos, will.retain, properties=will.properties)
    exchange = session.settings.exchange
    try:
        target = client.publish_target(exchange, convert.routing_key(will.topic), None)
        message = session.publisher.message(packet, exchange)
        if will.retain:
            client.retain(will.topic, message)
        client.vhost.publish(message, target)
        client.vhost.dispatch_due()
    except AccessRefused as error:
        log.info("will of %s not published: %s", session.peer, error.text)
    except PigeonError as error:
        log.info("will of %s not published: %s", session.peer, error.text)
