"""``/metrics`` and ``/metrics/per-object``, parsed with prometheus-client, against traffic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from admin_helpers import SAMPLE_INTERVAL, Api, Running, wait_for
from prometheus_client.parser import text_string_to_metric_families

RABBITMQ_FAMILIES = {
    # Families RabbitMQ's Grafana overview dashboard and alerts read.
    "rabbitmq_identity_info",
    "rabbitmq_build_info",
    "rabbitmq_connections",
    "rabbitmq_connections_opened",
    "rabbitmq_connections_closed",
    "rabbitmq_channels",
    "rabbitmq_consumers",
    "rabbitmq_channel_consumers",
    "rabbitmq_queues",
    "rabbitmq_queues_created",
    "rabbitmq_queues_deleted",
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_messages_published",
    "rabbitmq_global_messages_received",
    "rabbitmq_global_messages_delivered",
    "rabbitmq_global_messages_acknowledged",
    "rabbitmq_global_messages_redelivered",
    "rabbitmq_channel_messages_published",
    "rabbitmq_channel_messages_delivered",
    "rabbitmq_channel_messages_acked",
    "rabbitmq_channel_messages_redelivered",
    "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_resident_memory_limit_bytes",
    "rabbitmq_disk_space_available_bytes",
    "rabbitmq_disk_space_available_limit_bytes",
    "rabbitmq_process_open_fds",
    "rabbitmq_process_max_fds",
    "pigeon_queue_publish_to_deliver_seconds",
    "pigeon_queue_publish_to_ack_seconds",
}


def scrape(
    api: Api, path: str = "/metrics"
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = api.request("GET", path, auth=False)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def families(api: Api, path: str) -> set[str]:
    text = api.request("GET", path, auth=False).body.decode()
    return {f.name for f in text_string_to_metric_families(text)}


@pytest.fixture
def channel(running: Running) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def test_families_carry_rabbitmqs_names(api: Api) -> None:
    assert families(api, "/metrics") >= RABBITMQ_FAMILIES
    assert families(api, "/metrics/per-object") >= RABBITMQ_FAMILIES


def test_identity_names_the_node(api: Api) -> None:
    samples = scrape(api)
    identity = [labels for (name, labels) in samples if name == "rabbitmq_identity_info"]
    assert len(identity) == 1
    labels = dict(identity[0])
    assert labels["rabbitmq_node"] == labels["rabbitmq_cluster"] == "pigeon@localhost"


def test_metrics_need_no_credentials_but_the_api_does(api: Api) -> None:
    assert api.request("GET", "/metrics", auth=False).status == 200
    assert api.request("GET", "/api/overview", auth=False).status == 401


def test_counts_agree_with_traffic(
    api: Api, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    queue = f"metrics-{uid}"
    before = scrape(api)
    channel.queue_declare(queue)
    published, consumed = 12, 5
    for number in range(published):
        channel.basic_publish("", queue, f"m{number}".encode())
    for _ in range(consumed):
        method, _, _ = channel.basic_get(queue)
        assert method is not None
        channel.basic_ack(method.delivery_tag)
    # One unacked delivery on top: ready, unacked and total must each agree.
    unacked, _, _ = channel.basic_get(queue)
    assert unacked is not None

    labels = (("queue", queue), ("vhost", "/"))
    per_object = scrape(api, "/metrics/per-object")
    assert per_object[("rabbitmq_queue_messages_ready", labels)] == published - consumed - 1
    assert per_object[("rabbitmq_queue_messages_unacked", labels)] == 1
    assert per_object[("rabbitmq_queue_messages", labels)] == published - consumed
    assert per_object[("rabbitmq_queue_messages_published_total", labels)] == published

    after = scrape(api)

    def grew(name: str) -> float:
        key = (name, (("protocol", "amqp091"),))
        return after[key] - before.get(key, 0)

    assert grew("rabbitmq_global_messages_delivered_total") == consumed + 1
    assert grew("rabbitmq_global_messages_acknowledged_total") == consumed
    assert grew("rabbitmq_global_messages_received_total") == published
    assert after[("rabbitmq_queues", ())] - before[("rabbitmq_queues", ())] == 1


def test_counters_survive_queue_deletion(
    api: Api, running: Running, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    queue = f"gone-{uid}"
    channel.queue_declare(queue)
    for _ in range(3):
        channel.basic_publish("", queue, b"x")
    got, _, _ = channel.basic_get(queue, auto_ack=True)
    assert got is not None
    before = scrape(api)
    # Deleted before any sample saw it: its counts stay in the node's totals at once,
    # so that no counter goes back (Prometheus would take it for a restart).
    channel.queue_delete(queue)
    after = scrape(api)
    assert after[("rabbitmq_queues_deleted_total", ())] == (
        before[("rabbitmq_queues_deleted_total", ())] + 1
    )
    for name in (
        "rabbitmq_queue_messages_published_total",
        "rabbitmq_global_messages_delivered_total",
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
    ):
        labels = () if name.startswith("rabbitmq_queue_") else (("protocol", "amqp091"),)
        assert after[(name, labels)] == before[(name, labels)]


def test_rates_come_from_the_sliding_window(
    api: Api, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    queue = f"rates-{uid}"
    channel.queue_declare(queue)
    path = f"/api/queues/%2F/{queue}"
    wait_for(lambda: _sampled_at_all(api, queue))
    burst = 50
    for _ in range(burst):
        channel.basic_publish("", queue, b"r")
    rates: list[float] = []

    def publish_rate() -> float:
        rates.append(api.get(path)["message_stats"]["publish_details"]["rate"])
        return rates[-1]

    wait_for(lambda: publish_rate() > 0)
    # Samples are at least SAMPLE_INTERVAL apart, so the burst can't look faster than this.
    assert max(rates) <= burst / SAMPLE_INTERVAL * 1.05
    overview = api.get("/api/overview")["message_stats"]
    assert overview["publish"] >= burst
    # Once the window has slid past the burst, the rate is zero again: it is not a
    # lifetime average.
    wait_for(lambda: publish_rate() == 0)
    assert api.get(path)["message_stats"]["publish"] == burst


def _sampled_at_all(api: Api, queue: str) -> bool:
    details = api.get(f"/api/queues/%2F/{queue}?lengths_age=60&lengths_incr=1")
    return len(details["messages_details"].get("samples", [])) >= 2


def test_latency_histograms_count_each_delivery_and_ack(
    api: Api, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    queue = f"latency-{uid}"
    channel.queue_declare(queue)
    for n in range(5):
        channel.basic_publish("", queue, str(n).encode())
    acked = 0
    for _ in range(5):
        method, _, _ = channel.basic_get(queue)
        while method is None:
            method, _, _ = channel.basic_get(queue)
        if acked < 3:
            channel.basic_ack(method.delivery_tag)
            acked += 1
    labels = (("queue", queue), ("vhost", "/"))
    samples = scrape(api, "/metrics/per-object")
    assert samples[("pigeon_queue_publish_to_deliver_seconds_count", labels)] == 5
    assert samples[("pigeon_queue_publish_to_ack_seconds_count", labels)] == 3
    # Every observation is a real, non-negative duration, well under the test's length.
    total = samples[("pigeon_queue_publish_to_deliver_seconds_sum", labels)]
    assert 0 <= total < 5 * 60
    channel.queue_delete(queue)


def test_exchange_message_stats_count_and_rate(
    api: Api, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    exchange = f"stats-x-{uid}"
    channel.exchange_declare(exchange, "fanout")
    queues = [channel.queue_declare("", exclusive=True).method.queue for _ in range(2)]
    for queue in queues:
        channel.queue_bind(queue, exchange)
    path = f"/api/exchanges/%2F/{exchange}"
    for _ in range(10):
        channel.basic_publish(exchange, "", b"x")

    def stats() -> dict[str, Any]:
        return dict(api.get(path)["message_stats"])

    wait_for(lambda: stats().get("publish_in") == 10)
    assert stats()["publish_out"] == 20  # two queues each
    # The rates come from the same sliding-window series as the queues' (tested above).
    assert stats()["publish_in_details"]["rate"] >= 0
    channel.exchange_delete(exchange)


def test_short_lived_connections_and_queues_are_all_counted(api: Api, running: Running) -> None:
    def value(name: str) -> float:
        return scrape(api)[(name + "_total", ())]

    before = {
        name: value(name)
        for name in (
            "rabbitmq_connections_opened",
            "rabbitmq_connections_closed",
            "rabbitmq_queues_created",
            "rabbitmq_queues_deleted",
        )
    }
    for _ in range(3):  # each lives far shorter than a sampling interval
        connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
        connection.channel().queue_declare("", exclusive=True)
        connection.close()
    wait_for(
        lambda: value("rabbitmq_connections_closed") == before["rabbitmq_connections_closed"] + 3
    )
    assert value("rabbitmq_connections_opened") == before["rabbitmq_connections_opened"] + 3
    assert value("rabbitmq_queues_created") == before["rabbitmq_queues_created"] + 3
    assert value("rabbitmq_queues_deleted") == before["rabbitmq_queues_deleted"] + 3


def test_channel_message_stats_count_publishes_deliveries_and_acks(
    api: Api, running: Running
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        for _ in range(4):
            channel.basic_publish("", queue, b"x")
        for _ in range(4):
            method, _, _ = channel.basic_get(queue)
            while method is None:
                method, _, _ = channel.basic_get(queue)
            if method.delivery_tag <= 3:
                channel.basic_ack(method.delivery_tag)
        channel.queue_declare(queue, passive=True)  # a round trip: the acks are in

        def ours() -> dict[str, Any]:
            found = [c for c in api.get("/api/channels") if c["message_stats"].get("publish") == 4]
            return dict(found[0]["message_stats"]) if found else {}

        wait_for(lambda: ours().get("ack") == 3)
        stats = ours()
        assert (stats["publish"], stats["deliver_get"], stats["ack"]) == (4, 4, 3)
        assert stats["publish_details"]["rate"] >= 0
    finally:
        connection.close()


def test_the_overview_chart_counts_a_message_once_like_the_tile(
    api: Api, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    """One message into a fanout bound to three queues: the publish tile (received) and
    the publish chart's history both grow by one, not three; RabbitMQ's routed counter
    grows by three (one per queue reached)."""
    exchange = f"fan-{uid}"
    channel.exchange_declare(exchange, "fanout")
    queues = [f"fan-{uid}-{n}" for n in range(3)]
    for queue in queues:
        channel.queue_declare(queue)
        channel.queue_bind(queue, exchange)

    def tile_and_chart() -> tuple[int, float]:
        stats = api.get("/api/overview?msg_rates_age=60&msg_rates_incr=1")["message_stats"]
        samples = stats["publish_details"]["samples"]  # newest first
        return stats["publish"], samples[0]["sample"] if samples else -1

    def caught_up() -> bool:  # the newest sample has every publish the tile counts
        tile, chart = tile_and_chart()
        return chart == tile

    wait_for(caught_up)
    tile_before, chart_before = tile_and_chart()
    counted = scrape(api)
    burst = 20
    for _ in range(burst):
        channel.basic_publish(exchange, "", b"x")
    wait_for(lambda: tile_and_chart()[0] == tile_before + burst)
    wait_for(caught_up)
    assert tile_and_chart()[1] - chart_before == burst
    now = scrape(api)
    for name, growth in (("received", burst), ("routed", 3 * burst)):
        key = (f"rabbitmq_global_messages_{name}_total", (("protocol", "amqp091"),))
        assert now[key] - counted[key] == growth, name
    for queue in queues:
        channel.queue_delete(queue)
    channel.exchange_delete(exchange)


def test_detailed_metrics_take_rabbitmqs_family_and_vhost_parameters(
    api: Api, channel: pika.adapters.blocking_connection.BlockingChannel, uid: str
) -> None:
    queue = f"detailed-{uid}"
    channel.queue_declare(queue)
    channel.basic_consume(queue, lambda *_: None)
    mine = (("queue", queue), ("vhost", "/"))
    wanted = "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count"
    found = scrape(api, wanted + "&vhost=%2F")
    assert found[("rabbitmq_detailed_queue_messages_ready", mine)] == 0
    assert found[("rabbitmq_detailed_queue_messages", mine)] == 0
    assert found[("rabbitmq_detailed_queue_consumers", mine)] == 1
    # Only the families asked for, only in the vhosts asked for.
    assert not any(name == "rabbitmq_detailed_queue_messages_ready_bytes" for name, _ in found)
    elsewhere = scrape(api, wanted + f"&vhost=no-such-{uid}")
    assert not any(name.startswith("rabbitmq_detailed_") for name, _ in elsewhere)
    nothing = scrape(api, "/metrics/detailed")
    assert {name for name, _ in nothing} == {"rabbitmq_identity_info"}
    channel.queue_delete(queue)
