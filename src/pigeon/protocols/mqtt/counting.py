"""An MQTT session's message and connection counts, for the metrics per protocol
(RabbitMQ's ``rabbitmq_global_messages_*_total{protocol="mqtt311"|"mqtt50"}``).

Counted per turn, not per message: a turn's publishes received and routed are
what the core counted for the vhost while the session's packets were handled
(nothing else runs meanwhile); its QoS 1/2 acknowledgements are counted as
they go out together; deliveries taken from queues and the acknowledgements
given back are :class:`~.delivery.Outbound`'s. When the session ends, its
counts go into the node's (``NodeStats.by_protocol``), so totals never go back.
Connections: ``MQTT`` counts every connection an MQTT listener (TCP, TLS,
WebSocket) accepted and closed, as the transport counts them among all
connections (:class:`ListenerCounts`); each version counts the sessions it
opened and closed.
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


class ListenerCounts:
    """Where an MQTT listener's transport counts its connections: the node's counts,
    and MQTT's own share of them."""

    def __init__(self, stats: NodeStats) -> None:
        self.stats = stats

    @property
    def connections_opened(self) -> int:
        return self.stats.connections_opened

    @connections_opened.setter
    def connections_opened(self, value: int) -> None:
        self._add("connections_opened", value - self.stats.connections_opened)
        self.stats.connections_opened = value

    @property
    def connections_closed(self) -> int:
        return self.stats.connections_closed

    @connections_closed.setter
    def connections_closed(self, value: int) -> None:
        self._add("connections_closed", value - self.stats.connections_closed)
        self.stats.connections_closed = value

    def _add(self, key: str, more: int) -> None:
        kept = self.stats.protocol(TRANSPORT)
        kept[key] = kept.get(key, 0) + more


def opened(stats: NodeStats, protocol: str) -> None:
    kept = stats.protocol(protocol)
    kept["connections_opened"] = kept.get("connections_opened", 0) + 1


def retire(stats: NodeStats, protocol: str | None, session_counters: dict[str, int]) -> None:
    """The session is over: its counts stay in the node's."""
    if protocol is None:  # no session was opened
        return
    kept = stats.protocol(protocol)
    kept["connections_closed"] = kept.get("connections_closed", 0) + 1
    for key, value in session_counters.items():
        kept[key] = kept.get(key, 0) + value
