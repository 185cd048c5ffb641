"""Prometheus exposition under RabbitMQ's metric names.

``/metrics`` aggregates (one series per family, as RabbitMQ's plugin does by
default) and ``/metrics/per-object`` labels queue series by ``vhost`` and
``queue``, so RabbitMQ's published Grafana dashboards work unchanged. Beyond
RabbitMQ, ``pigeon_queue_publish_to_deliver_seconds`` and
``pigeon_queue_publish_to_ack_seconds`` are the end-to-end latency histograms.

Built as a ``prometheus_client`` custom collector: values are read from the
core when scraped, so nothing on the message path updates a metric.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pigeon.admin import process
from pigeon.admin.latency import Histogram
from pigeon.admin.metrics_cluster import cluster_families
from pigeon.admin.metrics_protocols import (
    ProtocolView,
    connection_families,
    consumers_by_protocol,
    protocol_view,
)
from pigeon.admin.metrics_raft import raft_families
from pigeon.admin.monitor import Monitor
from pigeon.admin.rates import Counters, queue_counters
from pigeon.admin.source import HandlerLike, cluster_of
from pigeon.core.message import SIZE_BOUNDS
from pigeon.core.node import Node
from pigeon.core.paging import paged_out
from pigeon.version import __version__

# Go's float formatting, as Prometheus writes ``le`` ("1e+06"), typed.
go_float: Callable[[float], str] = floatToGoString
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROTOCOL = "amqp091"

# (family suffix, counter key, help) for rabbitmq_global_messages_*_total{protocol}.
GLOBAL_COUNTERS = (
    ("received", "received", "Total number of messages received from publishers"),
    (
        "received_confirm",
        "received_confirm",
        "Total number of messages received from publishers expecting confirmations",
    ),
    # One per queue a message reaches (RabbitMQ adds the number of queues, not one).
    ("routed", "routed", "Total number of messages routed to queues or streams"),
    (
        "unroutable_dropped",
        "unroutable_dropped",
        "Total number of messages published as non-mandatory into an exchange and dropped "
        "as unroutable",
    ),
    (
        "unroutable_returned",
        "unroutable_returned",
        "Total number of messages published as mandatory into an exchange and returned to "
        "the publisher as unroutable",
    ),
    ("confirmed", "confirmed", "Total number of messages confirmed to publishers"),
    ("delivered", "deliver_get", "Total number of messages delivered to consumers"),
    (
        "delivered_consume_manual_ack",
        "deliver",
        "Total number of messages delivered to consumers using basic.consume with manual "
        "acknowledgment",
    ),
    (
        "delivered_consume_auto_ack",
        "deliver_no_ack",
        "Total number of messages delivered to consumers using basic.consume with automatic "
        "acknowledgment",
    ),
    (
        "delivered_get_manual_ack",
        "get",
        "Total number of messages delivered to consumers using basic.get with manual "
        "acknowledgment",
    ),
    (
        "delivered_get_auto_ack",
        "get_no_ack",
        "Total number of messages delivered to consumers using basic.get with automatic "
        "acknowledgment",
    ),
    ("get_empty", "get_empty", "Total number of times basic.get operations fetched no message"),
    ("acknowledged", "ack", "Total number of messages acknowledged by consumers"),
    ("redelivered", "redeliver", "Total number of messages redelivered to consumers"),
)
# (family, counter key, help) for the channel families RabbitMQ's dashboards plot.
CHANNEL_COUNTERS = (
    (
        "rabbitmq_channel_messages_published",
        "received",
        "Total number of messages published into an exchange on a channel",
    ),
    (
        "rabbitmq_channel_messages_confirmed",
        "confirmed",
        "Total number of messages published into an exchange and confirmed on the channel",
    ),
    (
        "rabbitmq_channel_messages_unroutable_dropped",
        "unroutable_dropped",
        "Total number of messages published as non-mandatory into an exchange and dropped as "
        "unroutable",
    ),
    (
        "rabbitmq_channel_messages_unroutable_returned",
        "unroutable_returned",
        "Total number of messages published as mandatory into an exchange and returned to the "
        "publisher as unroutable",
    ),
    (
        "rabbitmq_channel_messages_delivered",
        "deliver_get",
        "Total number of messages delivered to consumers",
    ),
    (
        "rabbitmq_channel_messages_redelivered",
        "redeliver",
        "Total number of messages redelivered to consumers",
    ),
    (
        "rabbitmq_channel_messages_acked",
        "ack",
        "Total number of messages acknowledged by consumers",
    ),
)
DEAD_LETTER_REASONS = ("expired", "rejected", "maxlen", "delivery_limit")
# rabbitmq_alarms_* family -> the name Pigeon's resource monitor raises it under.
ALARMS = {
    "memory_used_watermark": "memory",
    "free_disk_space_watermark": "disk",
    "file_descriptor_limit": "file_descriptors",  # never raised: Pigeon has no such alarm
}


def identity_info(node: Node, endpoint: str) -> Metric:
    """``rabbitmq_identity_info``: every RabbitMQ endpoint has it. ``endpoint`` is
    RabbitMQ's ``rabbitmq_endpoint`` label ("aggregated", "per-object" or "detailed"),
    which its dashboards filter on; the cluster is the ``cluster_name`` global
    parameter (the node's name unless set; ``pigeon`` in cluster mode)."""
    identity = GaugeMetricFamily(
        "rabbitmq_identity_info",
        "RabbitMQ node & cluster identity info",
        labels=[
            "rabbitmq_node",
            "rabbitmq_cluster",
            "rabbitmq_cluster_permanent_id",
            "rabbitmq_endpoint",
        ],
    )
    cluster = str(node.parameters.global_values.get("cluster_name", node.name))
    identity.add_metric([node.name, cluster, cluster, endpoint], 1)
    return identity


class BrokerCollector(Collector):
    def __init__(self, monitor: Monitor, *, per_object: bool) -> None:
        self.monitor = monitor
        self.per_object = per_object

    def collect(self) -> Iterable[Metric]:
        handlers = self.monitor.handlers()
        view = protocol_view(self.monitor, handlers)
        yield from self._identity()
        yield from self._objects(handlers, view)
        yield from self._queues()
        yield from self._counters(view)
        yield from self._process()
        yield from self._latency()
        yield message_sizes(self.monitor.node)
        yield from raft_families(self.monitor.node, per_object=self.per_object)
        yield from cluster_families(cluster_of(self.monitor.broker))

    def _identity(self) -> Iterator[Metric]:
        endpoint = "per-object" if self.per_object else "aggregated"
        yield identity_info(self.monitor.node, endpoint)
        build = GaugeMetricFamily(
            "rabbitmq_build_info",
            "RabbitMQ & Erlang/OTP version info",
            labels=[
                "rabbitmq_version",
                "prometheus_plugin_version",
                "prometheus_client_version",
                "erlang_version",
                "product",
            ],
        )
        build.add_metric(
            [__version__, __version__, "python", platform.python_version(), "Pigeon"], 1
        )
        yield build
        node = self.monitor.node
        yield _gauge(
            "rabbitmq_erlang_uptime_seconds", "Node uptime", node.scheduler.time() - node.started
        )

    def _objects(self, handlers: Sequence[HandlerLike], view: ProtocolView) -> Iterator[Metric]:
        monitor = self.monitor
        channels = sum(len(h.channels) for h in handlers)
        vhosts = monitor.node.vhosts.values()
        consumers = sum(len(q.consumers) for v in vhosts for q in v.queues.values())
        queues = sum(len(v.queues) for v in vhosts)
        yield from _clients(handlers, view, consumers_by_protocol(monitor, view))
        yield from connection_families(monitor, view)
        yield _gauge("rabbitmq_connections", "Connections currently open", len(handlers))
        counts = monitor.node.stats
        yield _counter(
            "rabbitmq_connections_opened",
            "Total number of connections opened",
            counts.connections_opened,
        )
        yield _counter(
            "rabbitmq_connections_closed",
            "Total number of connections closed or terminated",
            counts.connections_closed,
        )
        yield _gauge("rabbitmq_channels", "Channels currently open", channels)
        yield _counter(
            "rabbitmq_channels_opened", "Total number of channels opened", counts.channels_opened
        )
        yield _counter(
            "rabbitmq_channels_closed", "Total number of channels closed", counts.channels_closed
        )
        yield _gauge("rabbitmq_consumers", "Consumers currently connected", consumers)
        yield _gauge("rabbitmq_channel_consumers", "Consumers on a channel", consumers)
        yield _gauge("rabbitmq_queues", "Queues available", queues)
        yield _counter(
            "rabbitmq_queues_declared", "Total number of queues declared", counts.queues_declared
        )
        yield _counter(
            "rabbitmq_queues_created", "Total number of queues created", counts.queues_created
        )
        yield _counter(
            "rabbitmq_queues_deleted", "Total number of queues deleted", counts.queues_deleted
        )

    def _queues(self) -> Iterator[Metric]:
        labels = ["vhost", "queue"] if self.per_object else []
        families = {
            "messages": _family(
                "rabbitmq_queue_messages", "Sum of ready and unacknowledged messages", labels
            ),
            "messages_ready": _family(
                "rabbitmq_queue_messages_ready",
                "Messages ready to be delivered to consumers",
                labels,
            ),
            "messages_unacknowledged": _family(
                "rabbitmq_queue_messages_unacked",
                "Messages delivered to consumers but not yet acknowledged",
                labels,
            ),
            "bytes_ready": _family(
                "rabbitmq_queue_messages_ready_bytes", "Size in bytes of ready messages", labels
            ),
            "consumers": _family("rabbitmq_queue_consumers", "Consumers on a queue", labels),
            "paged_out": _family(
                "rabbitmq_queue_messages_paged_out", "Messages paged out to disk", labels
            ),
            "paged_out_bytes": _family(
                "rabbitmq_queue_messages_paged_out_bytes",
                "Size in bytes of messages paged out to disk",
                labels,
            ),
        }
        published = CounterMetricFamily(
            "rabbitmq_queue_messages_published",
            "Total number of messages published to queues",
            labels=labels,
        )
        totals: Counters = {}
        for vhost in self.monitor.node.vhosts.values():
            for queue in vhost.queues.values():
                counters = queue_counters(queue)
                counters["bytes_ready"] = queue.ready.bytes
                counters["consumers"] = len(queue.consumers)
                counters["paged_out"], counters["paged_out_bytes"] = paged_out(queue.ready)
                if self.per_object:
                    for key, family in families.items():
                        family.add_metric([vhost.name, queue.name], counters[key])
                    published.add_metric([vhost.name, queue.name], counters["publish"])
                for key in (*families, "publish"):
                    totals[key] = totals.get(key, 0) + counters[key]
        if not self.per_object:
            for key, family in families.items():
                family.add_metric([], totals.get(key, 0))
            published.add_metric([], totals.get("publish", 0) + self._retired("publish"))
        yield from families.values()
        yield published

    def _retired(self, key: str) -> float:
        return self.monitor.sampler.retired.get(key, 0)

    def _counters(self, view: ProtocolView) -> Iterator[Metric]:
        totals = self.monitor.sampler.totals()
        if "received" not in totals:
            # Until the core counts publishes itself, messages enqueued stand in for them.
            totals["received"] = totals.get("publish", 0)
        for suffix, key, text in GLOBAL_COUNTERS:
            if key in totals:
                family = CounterMetricFamily(
                    f"rabbitmq_global_messages_{suffix}", text, labels=["protocol"]
                )
                for label, value in view.split(key, totals[key]):
                    family.add_metric([label], value)
                yield family
        for reason in DEAD_LETTER_REASONS:
            key = f"dead_lettered_{reason}"
            if key in totals:
                family = CounterMetricFamily(
                    f"rabbitmq_global_messages_dead_lettered_{reason}",
                    f"Total number of messages dead-lettered ({reason})",
                    labels=["queue_type", "dead_letter_strategy"],
                )
                # Only quorum queues have a delivery limit (their other dead letters are
                # counted with the classic ones).
                kind = "quorum" if reason == "delivery_limit" else "classic"
                family.add_metric([f"rabbit_{kind}_queue", "at_most_once"], totals[key])
                yield family
        for name, key, text in CHANNEL_COUNTERS:
            if key in totals:
                yield _counter(name, text, totals[key])

    def _process(self) -> Iterator[Metric]:
        info = process.read(self.monitor.broker.config)
        yield from self._store()
        yield _gauge(
            "rabbitmq_process_resident_memory_bytes", "Memory used in bytes", info.resident_memory
        )
        yield _gauge(
            "rabbitmq_resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            info.memory_limit,
        )
        yield _gauge(
            "rabbitmq_disk_space_available_bytes", "Disk space available in bytes", info.disk_free
        )
        yield _gauge(
            "rabbitmq_disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            info.disk_free_limit,
        )
        yield _gauge("rabbitmq_process_open_fds", "Open file descriptors", info.open_fds)
        yield _gauge("rabbitmq_process_max_fds", "Open file descriptors limit", info.max_fds)
        yield _gauge("rabbitmq_process_open_tcp_sockets", "Open TCP sockets", info.open_sockets)
        yield _gauge("rabbitmq_process_max_tcp_sockets", "Open TCP sockets limit", info.max_fds)
        context = self.monitor.broker.context
        active = context.alarms.active if context is not None else set()
        for name, alarm in ALARMS.items():
            yield _gauge(
                f"rabbitmq_alarms_{name}", "is alarm in effect (1) or not (0)", alarm in active
            )

    def _store(self) -> Iterator[Metric]:
        store = self.monitor.node.store
        if store is None:
            return
        yield _gauge(
            "pigeon_store_commit_latency_seconds",
            "Seconds the store's last batch of writes took to reach the disk (write, fsync)",
            store.commit_latency,
        )
        pager = store.pager
        if pager is None:
            return
        yield _gauge(
            "pigeon_paging_memory_used_bytes",
            "Bodies of ready messages that queues hold in memory",
            pager.memory.used,
        )
        yield _gauge(
            "pigeon_paging_memory_limit_bytes",
            "Above this (paging_memory), queues page out their backlogs",
            pager.memory.limit,
        )
        yield _counter(
            "pigeon_paging_flow_pauses",
            "Times a publisher was paused until the pager caught up",
            pager.memory.flow_pauses,
        )

    def _latency(self) -> Iterator[Metric]:
        recorder = self.monitor.latency
        for name, table, text in (
            (
                "pigeon_queue_publish_to_deliver_seconds",
                recorder.deliver,
                "Time from publish to delivery to a consumer",
            ),
            (
                "pigeon_queue_publish_to_ack_seconds",
                recorder.ack,
                "Time from publish to acknowledgement by a consumer",
            ),
        ):
            labels = ["vhost", "queue"] if self.per_object else []
            family = HistogramMetricFamily(name, text, labels=labels)
            if self.per_object:
                for (vhost, queue), histogram in sorted(table.items()):
                    family.add_metric([vhost, queue], histogram.cumulative(), histogram.sum)
            else:
                merged = Histogram()
                for histogram in table.values():
                    merged.merge(histogram)
                family.add_metric([], merged.cumulative(), merged.sum)
            yield family


def _clients(
    handlers: Sequence[HandlerLike], view: ProtocolView, consumers: dict[str, int]
) -> Iterator[Metric]:
    """``rabbitmq_global_{publishers,consumers}`` by protocol: RabbitMQ's publishers are
    the open channels that have published at least once (an MQTT session that has)."""
    publishers = dict(view.publishers)
    publishers[PROTOCOL] = sum(
        1 for h in handlers for c in h.channels.values() if c.stats.get("publish")
    )
    for name, text, values in (
        ("rabbitmq_global_publishers", "Current number of publishers", publishers),
        ("rabbitmq_global_consumers", "Current number of consumers", consumers),
    ):
        family = GaugeMetricFamily(name, text, labels=["protocol"])
        for label in view.labels:
            family.add_metric([label], values.get(label, 0))
        yield family


def message_sizes(node: Node) -> Metric:
    """RabbitMQ 4's ``rabbitmq_message_size_bytes`` histogram, with its buckets."""
    sizes = node.stats.message_sizes
    family = HistogramMetricFamily(
        "rabbitmq_message_size_bytes",
        "Size of messages received from publishers",
        labels=["protocol"],
    )
    buckets: list[tuple[str, float]] = []
    seen = 0
    for bound, count in zip((*SIZE_BOUNDS, float("inf")), sizes.counts, strict=True):
        seen += count
        buckets.append((go_float(bound), seen))
    family.add_metric([PROTOCOL], buckets, sizes.total)
    return family


def _family(name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


def exposition(monitor: Monitor, *, per_object: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(monitor, per_object=per_object))
    return generate_latest(registry)
