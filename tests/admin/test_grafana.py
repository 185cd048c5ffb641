"""RabbitMQ's Grafana dashboards and Pigeon's own, against ``/metrics`` under a real workload.

The dashboards' JSON (docs/grafana/) is parsed: every metric name and every
``le`` bucket their queries use must be exposed while pika publishes (with and
without confirms), consumes (automatic and manual acknowledgement), gets
(including an empty get) and uses a quorum queue; the key counters must count
exactly that workload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from admin_helpers import Api, Running, serving, wait_for
from prometheus_client.parser import text_string_to_metric_families

from pigeon.config import Config

DASHBOARDS = Path(__file__).parents[2] / "docs" / "grafana"
RABBITMQ_DASHBOARDS = ("RabbitMQ-Overview.json", "RabbitMQ-Quorum-Queues-Raft.json")
# The Raft dashboard queries RabbitMQ < 4.2's names beside today's (one line each);
# Pigeon exposes today's only, or every such panel would draw its lines twice.
LEGACY = {
    "rabbitmq_raft_log_commit_index": "rabbitmq_raft_commit_index",
    "rabbitmq_raft_log_last_written_index": "rabbitmq_raft_last_written_index",
    "rabbitmq_raft_log_snapshot_index": "rabbitmq_raft_snapshot_index",
}
# Where Prometheus' series get the labels every query joins on: from Pigeon's
# rabbitmq_identity_info, or from Prometheus itself (instance, job; namespace is
# Kubernetes' relabelling and an absent label matches its empty value).
IDENTITY_LABELS = {"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_endpoint"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Channel = pika.adapters.blocking_connection.BlockingChannel


def expressions(dashboard: str) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads((DASHBOARDS / dashboard).read_text()))
    assert found, dashboard
    return found


def metric_names(expression: str) -> set[str]:
    """Metric names in a PromQL expression: label matchers and label lists removed."""
    bare = re.sub(r"\{[^}]*\}", "", expression)
    bare = re.sub(r"\b(on|by|without|group_left|group_right|ignoring)\s*\([^)]*\)", "", bare)
    return set(re.findall(r"\b((?:rabbitmq|pigeon)_[a-z0-9_]+)", bare))


def template_labels(dashboard: str) -> set[str]:
    """Labels the template variables read off rabbitmq_identity_info."""
    text = (DASHBOARDS / dashboard).read_text()
    found = re.findall(r"label_values\(rabbitmq_identity_info(?:\{[^}]*\})?\s*,\s*(\w+)\)", text)
    assert found, dashboard
    return set(found)


def scrape(api: Api, path: str) -> Samples:
    answer = api.request("GET", path, auth=False)
    assert answer.status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A broker with a data folder: its store and pager export metrics too."""
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path_factory.mktemp("grafana"),
        management_port=None,
    )
    with serving(config) as running:
        yield running


@pytest.fixture(scope="module")
def workload(running: Running) -> Iterator[tuple[Samples, Samples]]:
    """Scrapes (before, during) a workload of every kind the dashboards plot; the
    connection stays open until the module's tests are done."""
    api = running.api
    before = scrape(api, "/metrics")
    connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    plain, confirming = connection.channel(), connection.channel()
    confirming.confirm_delivery()
    for queue in ("grafana-auto", "grafana-manual", "grafana-get", "grafana-get"):
        plain.queue_declare(queue)  # the second grafana-get: declared, not created
    plain.queue_declare("grafana-quorum", durable=True, arguments={"x-queue-type": "quorum"})
    # Without confirms: 2-byte bodies, but one of 5,000 bytes.
    for queue, body in (
        ("grafana-auto", b"a0"),
        ("grafana-auto", b"a1"),
        ("grafana-manual", b"x" * 5000),
        ("grafana-get", b"g0"),
        ("grafana-get", b"g1"),
    ):
        plain.basic_publish("", queue, body)
    for number in range(3):  # with confirms, into the quorum queue
        confirming.basic_publish("", "grafana-quorum", f"q{number}".encode())
    consume(plain, "grafana-auto", 2, auto_ack=True)
    consume(plain, "grafana-manual", 1, auto_ack=False)
    got, _, _ = plain.basic_get("grafana-get", auto_ack=True)
    assert got is not None
    got, _, _ = plain.basic_get("grafana-get", auto_ack=False)
    assert got is not None
    plain.basic_ack(got.delivery_tag)
    empty, _, _ = plain.basic_get("grafana-get")
    assert empty is None
    for _ in range(2):  # one of the three stays in the queue
        got, _, _ = confirming.basic_get("grafana-quorum")
        assert got is not None
        confirming.basic_ack(got.delivery_tag)
    extra = connection.channel()
    extra.close()
    yield before, scrape(api, "/metrics")
    connection.close()


def consume(channel: Channel, queue: str, count: int, *, auto_ack: bool) -> None:
    deliveries = channel.consume(queue, auto_ack=auto_ack, inactivity_timeout=5)
    for taken, (method, _, _) in enumerate(deliveries, start=1):
        assert method is not None, "a message did not come"
        if not auto_ack:
            channel.basic_ack(method.delivery_tag)
        if taken == count:
            break
    channel.cancel()


@pytest.mark.parametrize("dashboard", RABBITMQ_DASHBOARDS)
@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_every_metric_a_rabbitmq_dashboard_queries_is_exposed(
    running: Running, workload: tuple[Samples, Samples], dashboard: str, path: str
) -> None:
    exposed = names(scrape(running.api, path))
    wanted = set().union(*(metric_names(e) for e in expressions(dashboard)))
    assert len(wanted) > 5, wanted
    for old, new in LEGACY.items():
        if old in wanted:
            wanted.discard(old)
            assert new in wanted
            assert old not in exposed
    assert wanted - exposed == set()


@pytest.mark.parametrize("dashboard", RABBITMQ_DASHBOARDS)
def test_the_labels_the_dashboards_join_on_are_there(
    running: Running, workload: tuple[Samples, Samples], dashboard: str
) -> None:
    text = " ".join(expressions(dashboard))
    joined = set(re.findall(r"rabbitmq_identity_info\{([^}]*)\}", text))
    assert joined
    for matchers in joined:
        labels = set(re.findall(r"(\w+)\s*=", matchers)) - {"namespace"}
        assert labels <= IDENTITY_LABELS, labels
    assert template_labels(dashboard) - {"namespace"} <= IDENTITY_LABELS
    for path, endpoint in (
        ("/metrics", "aggregated"),
        ("/metrics/per-object", "per-object"),
        ("/metrics/detailed?family=queue_coarse_metrics", "detailed"),
    ):
        identity = [dict(k) for n, k in scrape(running.api, path) if n == "rabbitmq_identity_info"]
        assert len(identity) == 1
        assert set(identity[0]) >= IDENTITY_LABELS
        assert identity[0]["rabbitmq_endpoint"] == endpoint


def test_the_message_size_buckets_are_rabbitmqs(
    running: Running, workload: tuple[Samples, Samples]
) -> None:
    text = " ".join(expressions("RabbitMQ-Overview.json"))
    wanted = set(re.findall(r'rabbitmq_message_size_bytes_bucket\{le="([^"]+)"\}', text))
    assert "1e+06" in wanted and "+Inf" in wanted
    exposed = {
        dict(labels)["le"]
        for name, labels in scrape(running.api, "/metrics")
        if name == "rabbitmq_message_size_bytes_bucket"
    }
    assert wanted <= exposed


def test_the_counters_count_the_workload(workload: tuple[Samples, Samples]) -> None:
    before, after = workload
    amqp = (("protocol", "amqp091"),)

    def grew(name: str, labels: tuple[tuple[str, str], ...] = amqp) -> float:
        return after[(name, labels)] - before.get((name, labels), 0)

    received = 5 + 3
    assert grew("rabbitmq_global_messages_received_total") == received
    assert grew("rabbitmq_global_messages_received_confirm_total") == 3
    assert grew("rabbitmq_global_messages_confirmed_total") == 3
    assert grew("rabbitmq_global_messages_delivered_consume_auto_ack_total") == 2
    assert grew("rabbitmq_global_messages_delivered_consume_manual_ack_total") == 1
    assert grew("rabbitmq_global_messages_delivered_get_auto_ack_total") == 1
    assert grew("rabbitmq_global_messages_delivered_get_manual_ack_total") == 1 + 2
    assert grew("rabbitmq_global_messages_get_empty_total") == 1
    assert grew("rabbitmq_global_messages_delivered_total") == 2 + 1 + 1 + 3
    assert grew("rabbitmq_global_messages_acknowledged_total") == 2 + 1 + 1 + 3
    assert grew("rabbitmq_channels_opened_total", ()) == 3
    assert grew("rabbitmq_channels_closed_total", ()) == 1
    assert grew("rabbitmq_queues_declared_total", ()) == 5
    assert grew("rabbitmq_queues_created_total", ()) == 4
    # Both channels that published are open; the consumers were all cancelled.
    assert after[("rabbitmq_global_publishers", amqp)] == 2
    assert after[("rabbitmq_global_consumers", amqp)] == 0
    sizes = [2] * 4 + [5000] + [2] * 3
    assert grew("rabbitmq_message_size_bytes_count") == received
    assert grew("rabbitmq_message_size_bytes_sum") == sum(sizes)
    bucket = "rabbitmq_message_size_bytes_bucket"
    assert grew(bucket, (("le", "100.0"), *amqp)) == received - 1
    assert grew(bucket, (("le", "1000.0"), *amqp)) == received - 1
    assert grew(bucket, (("le", "10000.0"), *amqp)) == received
    assert after[("rabbitmq_erlang_uptime_seconds", ())] > 0
    assert after[("rabbitmq_alarms_memory_used_watermark", ())] == 0


def test_channels_and_consumers_are_gauges_of_now(running: Running) -> None:
    api = running.api
    connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    channel = connection.channel()
    channel.queue_declare("grafana-gauges")
    channel.basic_consume("grafana-gauges", lambda *_: None)
    amqp = (("protocol", "amqp091"),)
    during = scrape(api, "/metrics")
    assert during[("rabbitmq_global_consumers", amqp)] >= 1
    opened = during[("rabbitmq_channels_opened_total", ())]
    closed = during[("rabbitmq_channels_closed_total", ())]
    connection.close()
    # The broker hears of the closed connection on its own loop: wait for it.
    wait_for(lambda: scrape(api, "/metrics")[("rabbitmq_channels_closed_total", ())] > closed)
    after = scrape(api, "/metrics")
    assert after[("rabbitmq_channels_closed_total", ())] == closed + 1
    assert after[("rabbitmq_channels_opened_total", ())] == opened
    assert (
        after[("rabbitmq_global_consumers", amqp)]
        == during[("rabbitmq_global_consumers", amqp)] - 1
    )


def test_a_quorum_queue_shows_as_a_single_member_raft_log(
    running: Running, workload: tuple[Samples, Samples]
) -> None:
    samples = scrape(running.api, "/metrics/per-object")
    mine = (("queue", "grafana-quorum"), ("vhost", "/"))
    # 3 enqueued, 2 acknowledged: 5 entries, all committed; 1 message still held.
    assert samples[("rabbitmq_raft_last_written_index", mine)] == 5
    assert samples[("rabbitmq_raft_commit_index", mine)] == 5
    assert samples[("rabbitmq_raft_last_applied", mine)] == 5
    assert samples[("rabbitmq_raft_snapshot_index", mine)] == 4
    assert samples[("rabbitmq_raft_term", mine)] == 1
    assert samples[("rabbitmq_raft_commit_latency_seconds", mine)] > 0  # a real fsync
    classic = (("queue", "grafana-get"), ("vhost", "/"))
    assert ("rabbitmq_raft_commit_index", classic) not in samples
    aggregated = scrape(running.api, "/metrics")
    assert aggregated[("rabbitmq_raft_commit_index", ())] >= 5


def test_pigeons_dashboard_queries_resolve(
    running: Running, workload: tuple[Samples, Samples]
) -> None:
    exposed = names(scrape(running.api, "/metrics/per-object"))
    wanted = set().union(*(metric_names(e) for e in expressions("pigeon.json")))
    assert {
        "pigeon_queue_publish_to_deliver_seconds_bucket",
        "pigeon_queue_publish_to_ack_seconds_bucket",
        "pigeon_paging_memory_used_bytes",
        "rabbitmq_alarms_memory_used_watermark",
        "pigeon_store_commit_latency_seconds",
    } <= wanted
    assert wanted - exposed == set()
    # Per queue, as the latency panels group them.
    latency = [
        dict(labels)
        for name, labels in scrape(running.api, "/metrics/per-object")
        if name == "pigeon_queue_publish_to_ack_seconds_count"
    ]
    assert {"vhost", "queue"} <= set(latency[0])


def test_the_alarm_gauge_shows_a_raised_alarm(tmp_path: Path) -> None:
    # More free disk wanted than any disk has: the disk alarm is raised at once.
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path,
        management_port=None,
        disk_free_limit=1 << 60,
    )
    with serving(config) as running:
        wait_for(
            lambda: (
                scrape(running.api, "/metrics")[("rabbitmq_alarms_free_disk_space_watermark", ())]
                == 1
            )
        )
        samples = scrape(running.api, "/metrics")
        assert samples[("rabbitmq_alarms_memory_used_watermark", ())] == 0


def test_counters_never_go_back_when_a_vhost_goes(running: Running) -> None:
    api = running.api
    assert api.request("PUT", "/api/vhosts/grafana-gone", {}).status in (201, 204)
    granted = {"configure": ".*", "write": ".*", "read": ".*"}
    assert api.request("PUT", "/api/permissions/grafana-gone/guest", granted).status in (201, 204)
    url = running.broker.amqp_url.rsplit("/", 1)[0] + "/grafana-gone"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare("short-lived")
    for _ in range(4):
        channel.basic_publish("", "short-lived", b"x")
    got, _, _ = channel.basic_get("short-lived", auto_ack=True)
    assert got is not None
    connection.close()
    before = scrape(api, "/metrics")
    assert api.request("DELETE", "/api/vhosts/grafana-gone").status == 204
    after = scrape(api, "/metrics")
    amqp = (("protocol", "amqp091"),)
    for key in (
        ("rabbitmq_global_messages_received_total", amqp),
        ("rabbitmq_global_messages_routed_total", amqp),
        ("rabbitmq_global_messages_delivered_get_auto_ack_total", amqp),
        ("rabbitmq_queue_messages_published_total", ()),
        ("rabbitmq_message_size_bytes_count", amqp),
    ):
        assert after[key] == before[key], key
