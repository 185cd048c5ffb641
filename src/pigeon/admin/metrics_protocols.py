"""Metrics per protocol: which part of the node's counts is AMQP's, MQTT 3.1.1's, 5.0's.

RabbitMQ 3.13 labels ``rabbitmq_global_messages_*_total``,
``rabbitmq_global_publishers`` and ``rabbitmq_global_consumers`` with
``protocol`` (``amqp091``, ``mqtt311``, ``mqtt50``). Pigeon's core counts for
every protocol at once, and the AMQP path counts nothing more: an MQTT session
keeps its own counts (per turn, see ``pigeon.protocols.mqtt.counting``; live
ones in its :class:`~pigeon.operations.sessions.SessionInfo`, ended ones in
``NodeStats.by_protocol``), and AMQP's are the node's totals less MQTT's. A
counter MQTT does not keep (redeliveries, unroutable drops, basic.get) is all
AMQP's. RabbitMQ has no connection counts by protocol; Pigeon's own
``pigeon_connections{protocol}`` and ``pigeon_connections_{opened,closed}_total``
give them (``amqp091``: every connection accepted less the MQTT listeners').
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pigeon.admin.monitor import Monitor
from pigeon.admin.rates import Counters
from pigeon.admin.source import HandlerLike

AMQP = "amqp091"
# The protocol names sessions describe themselves with -> RabbitMQ's label values.
# (RabbitMQ counts Web MQTT under the same labels as MQTT.)
LABELS = {
    "AMQP 0-9-1": AMQP,
    "MQTT 3.1.1": "mqtt311",
    "MQTT 5.0": "mqtt50",
    "Web MQTT 3.1.1": "mqtt311",
    "Web MQTT 5.0": "mqtt50",
}
MQTT_LABELS = ("mqtt311", "mqtt50")
TRANSPORT = "MQTT"  # every accepted MQTT connection, whatever its version (or none yet)


@dataclass
class ProtocolView:
    """The node's counts split by protocol label, read once per scrape."""

    labels: tuple[str, ...]
    counters: dict[str, Counters] = field(default_factory=dict)  # MQTT's only
    connections: dict[str, int] = field(default_factory=dict)  # open now
    publishers: dict[str, int] = field(default_factory=dict)  # MQTT's only
    owners: dict[str, set[int]] = field(default_factory=dict)  # ids of MQTT sessions

    def split(self, key: str, total: float) -> list[tuple[str, float]]:
        """``total`` by label: MQTT's as counted, AMQP's the rest."""
        own = [(label, self.counters.get(label, {}).get(key, 0.0)) for label in MQTT_LABELS]
        rest = total - sum(value for _, value in own)
        return [(AMQP, max(rest, 0.0)), *[(k, v) for k, v in own if k in self.labels]]


def protocol_view(monitor: Monitor, handlers: Sequence[HandlerLike]) -> ProtocolView:
    mqtt = getattr(monitor.broker, "mqtt_port", None) is not None
    kept = monitor.node.stats.by_protocol
    labels = (AMQP, *MQTT_LABELS) if mqtt or kept else (AMQP,)
    view = ProtocolView(labels)
    for name, counts in kept.items():
        label = LABELS.get(name)
        if label in MQTT_LABELS:
            _add(view.counters.setdefault(label, {}), counts)
    for handler in handlers:
        info = handler.describe()
        label = LABELS.get(info.protocol, AMQP)
        view.connections[label] = view.connections.get(label, 0) + 1
        if label in MQTT_LABELS:
            view.owners.setdefault(label, set()).add(id(handler))
            _add(view.counters.setdefault(label, {}), info.counters)
            if info.counters.get("received"):
                view.publishers[label] = view.publishers.get(label, 0) + 1
    return view


def _add(total: Counters, more: Mapping[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


def consumers_by_protocol(monitor: Monitor, view: ProtocolView) -> dict[str, int]:
    """Consumers of every queue, by the protocol of the session that owns them."""
    found = dict.fromkeys(view.labels, 0)
    owner_label = {owner: label for label, ids in view.owners.items() for owner in ids}
    for vhost in monitor.node.vhosts.values():
        for queue in vhost.queues.values():
            for consumer in queue.consumers:
                label = owner_label.get(id(consumer.owner), AMQP)
                found[label] = found.get(label, 0) + 1
    return found


def connection_families(monitor: Monitor, view: ProtocolView) -> Iterator[Metric]:
    stats = monitor.node.stats
    kept = stats.by_protocol
    live = GaugeMetricFamily(
        "pigeon_connections", "Connections currently open, by protocol", labels=["protocol"]
    )
    opened = CounterMetricFamily(
        "pigeon_connections_opened",
        "Total number of connections opened, by protocol (MQTT: sessions accepted)",
        labels=["protocol"],
    )
    closed = CounterMetricFamily(
        "pigeon_connections_closed",
        "Total number of connections closed, by protocol (MQTT: sessions ended)",
        labels=["protocol"],
    )
    transport = kept.get(TRANSPORT, {})
    for family, key, total in (
        (opened, "connections_opened", stats.connections_opened),
        (closed, "connections_closed", stats.connections_closed),
    ):
        family.add_metric([AMQP], max(total - transport.get(key, 0), 0))
        for name, label in (("MQTT 3.1.1", "mqtt311"), ("MQTT 5.0", "mqtt50")):
            if label in view.labels:
                family.add_metric([label], kept.get(name, {}).get(key, 0))
    for label in view.labels:
        live.add_metric([label], view.connections.get(label, 0))
    yield live
    yield opened
    yield closed
