"""RabbitMQ's ``rabbitmq_raft_*`` families for Pigeon's quorum queues, true for one node.

RabbitMQ keeps each quorum queue in a Raft log (``ra``) replicated to other
nodes, and its "RabbitMQ-Quorum-Queues-Raft" Grafana dashboard plots that log's
indexes. A Pigeon quorum queue is kept by this node alone, in the store, with
no log of its own, so each number below is the one a single-member Raft group
holding the same messages would show (docs/management.md, "Grafana"):

- ``last_written_index``, ``commit_index``, ``last_applied``: one log entry per
  message enqueued and per message acknowledged (rabbit_fifo appends an
  ``enqueue`` and a ``settle`` command). With no follower to wait for, an entry
  is committed and applied as it is written: the three are equal, and the
  dashboard's "uncommitted entries" reads 0.
- ``snapshot_index``: the written index less the messages the queue still holds
  (ready and unacknowledged), so "entries in the log" is the queue's depth: what
  a snapshot could not release yet.
- ``term``: 1. A single member elects itself once; no leader changes.
- ``commit_latency_seconds``: how long the store's last batch of writes took
  to reach the disk (write and fsync), which is the wait before a persistent
  message is confirmed; 0 without a store.

``/metrics/per-object`` labels them by ``vhost`` and ``queue`` as RabbitMQ's
per-object endpoint does; ``/metrics`` sums the indexes over quorum queues
(one series each, like its other families) and gives the store's latency once.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from pigeon.core.node import Node
from pigeon.core.queue import Queue

INDEXES = (
    ("last_written_index", "Last fully written and fsynced index of the log"),
    ("commit_index", "Current commit index"),
    ("last_applied", "Last applied index. Can go backwards if a ra server is restarted"),
    ("snapshot_index", "Current snapshot index"),
)


def log_indexes(queue: Queue) -> tuple[int, int]:
    """(written index, snapshot index) of a quorum queue, as described above."""
    stats = queue.stats
    written = stats.published + stats.acked
    held = len(queue.ready) + queue.unacked
    return written, max(0, written - held)


def raft_families(node: Node, *, per_object: bool) -> Iterator[Metric]:
    labels = ["vhost", "queue"] if per_object else []
    indexes = {
        name: GaugeMetricFamily(f"rabbitmq_raft_{name}", text, labels=labels)
        for name, text in INDEXES
    }
    # A gauge to keep RabbitMQ's name (a counter family would add ``_total``).
    term = GaugeMetricFamily("rabbitmq_raft_term", "Current term", labels=labels)
    latency = GaugeMetricFamily(
        "rabbitmq_raft_commit_latency_seconds",
        "Approximate time taken from an entry being written to the log until it is committed",
        labels=labels,
    )
    seconds = node.store.commit_latency if node.store is not None else 0.0
    written_total = snapshot_total = members = 0
    for vhost in node.vhosts.values():
        for queue in vhost.queues.values():
            if queue.type != "quorum":
                continue
            written, snapshot = log_indexes(queue)
            members += 1
            written_total += written
            snapshot_total += snapshot
            if per_object:
                key = [vhost.name, queue.name]
                for name, family in indexes.items():
                    family.add_metric(key, snapshot if name == "snapshot_index" else written)
                term.add_metric(key, 1)
                latency.add_metric(key, seconds)
    if not per_object:
        for name, family in indexes.items():
            family.add_metric([], snapshot_total if name == "snapshot_index" else written_total)
        term.add_metric([], 1 if members else 0)
        latency.add_metric([], seconds)
    yield from indexes.values()
    yield term
    yield latency
