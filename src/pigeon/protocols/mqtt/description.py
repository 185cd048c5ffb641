"""An MQTT session as the management API, UI and ``pigeon ctl`` show it.

Field names are those of RabbitMQ's MQTT plugin where it has one (its
``rabbitmqctl list_mqtt_connections`` items): ``client_id``, ``keepalive``,
``clean_sess`` (clean start with no session expiry, 3.1.1's clean session),
``exchange``, ``prefetch`` (the inflight limit), ``messages_unacknowledged``;
and Pigeon's own where it has none: the session expiry, the number of
subscriptions, the messages queued for the client, whether a will is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pigeon.operations.sessions import SessionInfo
from pigeon.protocols.mqtt import counting
from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5

if TYPE_CHECKING:
    from pigeon.protocols.mqtt.session import MQTTSession

PROTOCOL_NAMES = {MQTT_3_1_1: "MQTT 3.1.1", MQTT_5: "MQTT 5.0"}


def protocol_name(session: MQTTSession) -> str:
    """RabbitMQ's names: "MQTT 3.1.1", "MQTT 5.0"; over WebSocket "Web MQTT 5.0"."""
    name = PROTOCOL_NAMES.get(session.version, "MQTT")
    return "Web " + name if session.remote.websocket is not None else name


def describe(session: MQTTSession) -> SessionInfo:
    login = session.login
    client_id = login.client_id if login is not None else ""
    return SessionInfo(
        protocol=protocol_name(session),
        peer=session.remote.address,
        user=session.username,
        vhost=session.vhost_name,
        channels=1,
        client_properties={"client_id": client_id} if login is not None else {},
        mechanism=session.identity.mechanism if session.identity is not None else "",
        tls=session.remote.tls,
        extras=fields(session, client_id),
        # An ended session's counts are the node's already (until the socket is gone).
        counters={} if session.ended else counting.counters(session.counts, session.outbound),
        local=session.remote.local,
    )


def fields(session: MQTTSession, client_id: str) -> dict[str, Any]:
    connect = session.connect
    clean_start = connect.clean_start if connect is not None else True
    outbound, queue = session.outbound, session.queue
    subscriptions = session.subscriptions
    inflight = 0
    if outbound is not None:
        inflight = len(outbound.inflight) + len(outbound.state.awaiting_complete)
    return {
        "client_id": client_id,
        "keepalive": session.keepalive_seconds,
        "clean_sess": clean_start and not session.session_expiry,
        "clean_start": clean_start,
        "session_expiry_interval": session.session_expiry,
        "subscriptions": (len(subscriptions.by_filter) if subscriptions is not None else 0)
        + len(session.shared),
        "messages_unacknowledged": inflight,
        "messages_queued": len(queue.ready) if queue is not None else 0,
        "prefetch": outbound.limit if outbound is not None else 0,
        "will_msg": session.will is not None,
        "exchange": session.settings.exchange,
        "channel_max": 0,
        "frame_max": session.settings.maximum_packet_size or 0,
    }
