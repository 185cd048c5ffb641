"""``pigeon_cluster_*``: this node's view of the cluster, for ``/metrics`` in cluster
mode (docs/cluster.md, "Monitoring"). Read from the cluster member when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from pigeon.admin.source import ClusterLike

# (gauge key, metric name, help)
FAMILIES = (
    ("connected", "pigeon_cluster_connected", "Connected to a NATS server (1) or not (0)"),
    (
        "jetstream_servers",
        "pigeon_cluster_jetstream_servers",
        "JetStream servers answering their health check (the servers known to the "
        "client without monitoring URLs)",
    ),
    (
        "jetstream_available",
        "pigeon_cluster_jetstream_available",
        "JetStream answers and has a meta leader (1) or not (0), as last probed",
    ),
    (
        "kv_watch_lag_seconds",
        "pigeon_cluster_kv_watch_lag_seconds",
        "Seconds between the servers storing the last definition change and its arrival here",
    ),
    (
        "kv_watch_pending",
        "pigeon_cluster_kv_watch_pending",
        "Definition changes stored but not yet received by this node's watch",
    ),
    (
        "definitions_unacknowledged",
        "pigeon_cluster_definitions_unacknowledged",
        "Definition changes of this node not yet acknowledged by the bucket",
    ),
    ("nodes_running", "pigeon_cluster_nodes_running", "Pigeon nodes running, this one included"),
    (
        "nodes_stopped",
        "pigeon_cluster_nodes_stopped",
        "Pigeon nodes known to the cluster whose heartbeat stopped",
    ),
    (
        "heartbeat_age_seconds",
        "pigeon_cluster_heartbeat_age_seconds",
        "Seconds since this node's last heartbeat was acknowledged (-1: none yet)",
    ),
    (
        "always_sync",
        "pigeon_cluster_durability_always_sync",
        "Every JetStream server fsyncs each write before acknowledging it (1) or not (0)",
    ),
)


def cluster_families(cluster: ClusterLike | None) -> Iterator[Metric]:
    if cluster is None:
        return
    values = cluster.gauges()
    for key, name, text in FAMILIES:
        if key in values:
            yield GaugeMetricFamily(name, text, value=values[key])
