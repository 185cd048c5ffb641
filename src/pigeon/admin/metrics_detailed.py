"""``/metrics/detailed``: RabbitMQ's per-queue metric families, chosen by the scraper.

``?family=queue_coarse_metrics&family=queue_consumer_count`` picks families and
``?vhost=NAME`` (repeatable) limits them to some vhosts, as RabbitMQ's
``rabbitmq_prometheus`` does; names carry its ``rabbitmq_detailed_`` prefix and a
``vhost`` and ``queue`` label. Without a family nothing but the identity is
exposed, as there. Families Pigeon has no numbers for are left out, not faked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pigeon.admin.metrics import identity_info
from pigeon.admin.monitor import Monitor
from pigeon.core.paging import paged_out
from pigeon.core.queue import Queue

PREFIX = "rabbitmq_detailed_"
# family -> (metric name without the prefix, help, value of a queue)
QueueGauge = tuple[str, str, Callable[[Queue], float]]
FAMILIES: dict[str, tuple[QueueGauge, ...]] = {
    "queue_coarse_metrics": (
        (
            "queue_messages_ready",
            "Messages ready to be delivered to consumers",
            lambda q: len(q.ready),
        ),
        (
            "queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            lambda q: q.unacked,
        ),
        (
            "queue_messages",
            "Sum of ready and unacknowledged messages - total queue depth",
            lambda q: len(q.ready) + q.unacked,
        ),
    ),
    "queue_consumer_count": (
        ("queue_consumers", "Consumers on a queue", lambda q: len(q.consumers)),
    ),
    "queue_metrics": (
        ("queue_consumers", "Consumers on a queue", lambda q: len(q.consumers)),
        ("queue_messages_ready_bytes", "Size in bytes of ready messages", lambda q: q.ready.bytes),
        ("queue_messages_paged_out", "Messages paged out to disk", lambda q: paged_out(q.ready)[0]),
        (
            "queue_messages_paged_out_bytes",
            "Size in bytes of messages paged out to disk",
            lambda q: paged_out(q.ready)[1],
        ),
    ),
}


class DetailedCollector(Collector):
    def __init__(
        self, monitor: Monitor, families: Collection[str], vhosts: Collection[str]
    ) -> None:
        self.monitor = monitor
        self.families = [f for f in FAMILIES if f in families]
        self.vhosts = vhosts

    def collect(self) -> Iterable[Metric]:
        yield identity_info(self.monitor.node, "detailed")
        gauges: dict[str, tuple[GaugeMetricFamily, Callable[[Queue], float]]] = {}
        for family in self.families:
            for name, text, value in FAMILIES[family]:  # a name in two families: once
                gauges.setdefault(
                    name, (GaugeMetricFamily(PREFIX + name, text, labels=["vhost", "queue"]), value)
                )
        for vhost in self.monitor.node.vhosts.values():
            if self.vhosts and vhost.name not in self.vhosts:
                continue
            for queue in vhost.queues.values():
                for metric, value in gauges.values():
                    metric.add_metric([vhost.name, queue.name], value(queue))
        for metric, _ in gauges.values():
            yield metric


def exposition(monitor: Monitor, families: Collection[str], vhosts: Collection[str]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DetailedCollector(monitor, families, vhosts))
    return generate_latest(registry)
