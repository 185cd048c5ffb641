"""An MQTT session's message and connection counts, for the metrics per protocol
(RabbitMQ's ``rabbitmq_global_messages_*_total{protocol="mqtt311"|"mqtt50"}``).

Counted per turn, not per message: a turn's publishes received and routed are
what the core counted for the vhost while the session's packets were handled
(nothing else runs meanwhile); its QoS 1/2 acknowledgements are counted as
they go out together; deliveries taken from queues and the acknowledgements
given back are :class:`~.delivery.Outbound`'s. When the session ends, its
counts go into the node's (``NodeStats.by_protocol``), so totals never go back.
Connections: ``MQTT`` counts every MQTT connection accepted and closed (the
transport counts them among all connections); each version counts the sessions
it opened and closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pigeon.core.node import NodeStats
    from pigeon.protocols.mqtt.delivery import Outbound

TRANSPORT = "MQTT"  # the key every accepted MQTT connection is counted under


@dataclass(slots=True)
class SessionCounts:
    received: int = 0
    routed: int = 0
    confirmed: int = 0  # PUBACK/PUBREC sent for QoS 1/2 publishes


def counters(counts: SessionCounts, outbound: Outbound | None) -> dict[str, int]:
    """The session's counts under the management layer's counter keys."""
    delivered = outbound.delivered if outbound is not None else 0
    return {
        "received": counts.received,
        "received_confirm": counts.confirmed,
        "routed": counts.routed,
        "confirmed": counts.confirmed,
        "deliver_get": delivered,
        "deliver": delivered,  # (to its queue, every MQTT delivery is acknowledged)
        "ack": outbound.acked if outbound is not None else 0,
    }


def accepted(stats: NodeStats) -> None:
    kept = stats.protocol(TRANSPORT)
    kept["connections_opened"] = kept.get("connections_opened", 0) + 1


def opened(stats: NodeStats, protocol: str) -> None:
    kept = stats.protocol(protocol)
    kept["connections_opened"] = kept.get("connections_opened", 0) + 1


def retire(stats: NodeStats, protocol: str | None, session_counters: dict[str, int]) -> None:
    """The connection is gone: its counts stay in the node's."""
    transport = stats.protocol(TRANSPORT)
    transport["connections_closed"] = transport.get("connections_closed", 0) + 1
    if protocol is None:  # no session was opened
        return
    kept = stats.protocol(protocol)
    kept["connections_closed"] = kept.get("connections_closed", 0) + 1
    for key, value in session_counters.items():
        kept[key] = kept.get(key, 0) + value
