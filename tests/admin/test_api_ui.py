"""What the web UI needs from the API: moving messages, the node panel's fields, paging
by name over many queues, and sample history for the chart time ranges."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pika
from admin_helpers import Api, Running, wait_for

from pigeon.broker import Broker
from pigeon.config import Config


def publish(api: Api, queue: str, body: str, **properties: object) -> None:
    sent = {"routing_key": queue, "payload": body, "payload_encoding": "string"}
    answer = api.request(
        "POST", "/api/exchanges/%2F/amq.default/publish", {**sent, "properties": properties}
    )
    assert answer.status == 200 and answer.json() == {"routed": True}


def test_move_keeps_order_properties_and_count(api: Api, running: Running, uid: str) -> None:
    source, target = f"move-src-{uid}", f"move-dst-{uid}"
    for name in (source, target):
        api.request("PUT", f"/api/queues/%2F/{name}", {})
    for n in range(5):
        publish(api, source, f"m{n}", headers={"n": n}, correlation_id=f"c{n}")
    moved = api.request(
        "POST", f"/api/queues/%2F/{source}/move", {"destination": target, "count": 3}
    )
    assert moved.status == 200 and moved.json() == {"moved": 3}
    assert api.get(f"/api/queues/%2F/{source}")["messages"] == 2
    assert api.get(f"/api/queues/%2F/{target}")["messages"] == 3
    connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    try:
        channel = connection.channel()
        got = [channel.basic_get(target, auto_ack=True) for _ in range(3)]
        assert [body for _, _, body in got] == [b"m0", b"m1", b"m2"]
        assert [props.headers for _, props, _ in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [props.correlation_id for _, props, _ in got] == ["c0", "c1", "c2"]
        assert not any(method.redelivered for method, _, _ in got)
    finally:
        connection.close()
    rest = api.request("POST", f"/api/queues/%2F/{source}/move", {"destination": target})
    assert rest.json() == {"moved": 2}


def test_move_stops_at_a_full_destination_and_loses_nothing(api: Api, uid: str) -> None:
    source, target = f"move-full-src-{uid}", f"move-full-dst-{uid}"
    api.request("PUT", f"/api/queues/%2F/{source}", {})
    full = {"arguments": {"x-max-length": 2, "x-overflow": "reject-publish"}}
    api.request("PUT", f"/api/queues/%2F/{target}", full)
    for n in range(5):
        publish(api, source, f"m{n}")
    moved = api.request("POST", f"/api/queues/%2F/{source}/move", {"destination": target})
    assert moved.json() == {"moved": 2}
    assert api.get(f"/api/queues/%2F/{source}")["messages_ready"] == 3
    assert api.get(f"/api/queues/%2F/{target}")["messages_ready"] == 2
    head = api.request(
        "POST", f"/api/queues/%2F/{source}/get", {"count": 1, "ackmode": "ack_requeue_true"}
    ).json()
    assert head[0]["payload"] == "m2"  # the refused message went back to the head


def test_move_refusals(api: Api, uid: str) -> None:
    source = f"move-bad-{uid}"
    api.request("PUT", f"/api/queues/%2F/{source}", {})
    path = f"/api/queues/%2F/{source}/move"
    assert api.request("POST", path, {}).status == 400
    assert api.request("POST", path, {"destination": source}).status == 400
    assert api.request("POST", path, {"destination": f"nope-{uid}"}).status == 404
    assert api.request("POST", path, {"destination": "x", "count": 0}).status == 400
    api.request("PUT", "/api/users/mover", {"password": "pw", "tags": "management"})
    api.request(
        "PUT", "/api/permissions/%2F/mover", {"configure": "", "write": "^nothing$", "read": ".*"}
    )
    api.request("PUT", f"/api/queues/%2F/{source}-to", {})
    refused = api.as_user("mover", "pw").request("POST", path, {"destination": f"{source}-to"})
    assert refused.status == 401


def test_moved_messages_survive_a_restart(tmp_path: Path, uid: str) -> None:
    config = Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path, management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        api = Api(broker.management_url.rstrip("/"))
        for name in ("src", "dst"):
            api.request("PUT", f"/api/queues/%2F/{name}", {"durable": True})
        for n in range(4):
            publish(api, "src", f"m{n}", delivery_mode=2)
        assert api.request("POST", "/api/queues/%2F/src/move", {"destination": "dst"}).json() == {
            "moved": 4
        }
        node = api.get("/api/nodes")[0]
        assert node["store_bytes"] > 0
        assert node["db_dir"] == str(tmp_path)
    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path, management_port=0)
    ) as broker:
        assert broker.management_url is not None
        api = Api(broker.management_url.rstrip("/"))
        assert api.get("/api/queues/%2F/src")["messages"] == 0
        assert api.get("/api/queues/%2F/dst")["messages"] == 4


def test_node_panel_fields(api: Api) -> None:
    node = api.get("/api/nodes")[0]
    for key in ("mem_used", "mem_limit", "disk_free", "disk_free_limit", "fd_used", "fd_total"):
        assert isinstance(node[key], int) and node[key] >= 0
    assert node["mem_alarm"] is False and node["disk_free_alarm"] is False
    assert node["uptime"] >= 0 and node["connections"] >= 0
    assert node["store_bytes"] == 0 and node["db_dir"] is None  # nothing kept on disk
    assert {"io_sync_count", "io_sync_avg_time", "io_sync_max_time"} <= set(node)


def test_paging_by_name_counts_before_and_after_the_filter(api: Api, running: Running) -> None:
    async def declare() -> None:
        assert running.broker.node is not None
        vhost = running.broker.node.vhosts["/"]
        for n in range(120):
            vhost.declare_queue(f"paged-{n:03}", owner=None)

    running.on_loop(declare())
    total = len(api.get("/api/queues?columns=name"))
    page = api.get("/api/queues?page=2&page_size=50&name=paged-&sort=name")
    assert page["filtered_count"] == 120 and page["total_count"] == total
    assert page["page_count"] == 3 and page["item_count"] == 50
    assert page["items"][0]["name"] == "paged-050" and "messages" in page["items"][0]
    regex = api.get("/api/queues?page=1&page_size=50&name=^paged-11[0-9]$&use_regex=true")
    assert [q["name"] for q in regex["items"]] == [f"paged-{n}" for n in range(110, 120)]
    backwards = api.get("/api/queues?page=1&page_size=2&name=paged-&sort=name&sort_reverse=true")
    assert [q["name"] for q in backwards["items"]] == ["paged-119", "paged-118"]
    for n, depth in ((7, 3), (42, 1), (99, 2)):
        for _ in range(depth):
            publish(api, f"paged-{n:03}", "x")
    query = "name=paged-&sort=messages&sort_reverse=true&columns=name,messages"
    by_depth = api.get(f"/api/queues?page=1&page_size=5&{query}")
    assert by_depth["filtered_count"] == 120 and len(by_depth["items"]) == 5
    assert by_depth["items"] == api.get(f"/api/queues?{query}")[:5]  # as the unpaged list
    assert [q["name"] for q in by_depth["items"][:3]] == ["paged-007", "paged-099", "paged-042"]


def test_a_page_sorted_by_a_rate_is_in_the_order_of_its_rates(api: Api, uid: str) -> None:
    # Sorted from the sampler's series without building every queue's JSON: the page's
    # own rates (computed in the same request) are in order.
    names = [f"ratesort-{uid}-{n}" for n in range(3)]
    for name in names:
        api.request("PUT", f"/api/queues/%2F/{name}", {})

    def sampled(name: str) -> bool:  # (a rate needs a sample from before the publishes)
        found = api.get(f"/api/queues/%2F/{name}?msg_rates_age=60&msg_rates_incr=5")
        return bool(found["message_stats"]["publish_details"]["samples"])

    wait_for(lambda: all(sampled(name) for name in names))
    for name, count in zip(names, (6, 2, 4), strict=True):
        for _ in range(count):
            publish(api, name, "x")
    query = f"page=1&page_size=10&name=ratesort-{uid}&sort=message_stats.publish_details.rate"

    def rates() -> list[float]:
        page = api.get(f"/api/queues?{query}&sort_reverse=true")
        assert sorted(q["name"] for q in page["items"]) == names
        return [q["message_stats"]["publish_details"]["rate"] for q in page["items"]]

    wait_for(lambda: rates()[0] > 0)
    found = rates()
    assert found == sorted(found, reverse=True)
    ascending = api.get(f"/api/queues?{query}")["items"]
    assert [q["message_stats"]["publish_details"]["rate"] for q in ascending] == sorted(
        q["message_stats"]["publish_details"]["rate"] for q in ascending
    )


def test_history_query_for_a_long_range(api: Api, uid: str) -> None:
    queue = f"history-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    day = "lengths_age=86400&lengths_incr=1800&msg_rates_age=86400&msg_rates_incr=1800"
    overview = api.get("/api/overview?" + day)
    assert isinstance(overview["queue_totals"]["messages_details"]["samples"], list)
    assert isinstance(overview["message_stats"]["publish_details"]["samples"], list)
    path = f"/api/queues/%2F/{queue}?" + day
    assert isinstance(api.get(path)["messages_details"]["samples"], list)  # [] until sampled
    wait_for(lambda: len(api.get(path)["messages_details"]["samples"]) == 1)
    exchange = api.get("/api/exchanges/%2F/amq.direct?" + day)["message_stats"]
    assert "samples" in exchange["publish_in_details"]
    # As RabbitMQ: lengths_* ask for depth samples only, msg_rates_* for counter samples.
    lengths = api.get(f"/api/queues/%2F/{queue}?lengths_age=60&lengths_incr=5")
    assert "samples" in lengths["messages_details"]
    assert "samples" not in lengths["message_stats"].get("publish_details", {})
    rates = api.get(f"/api/queues/%2F/{queue}?msg_rates_age=60&msg_rates_incr=5")
    assert "samples" not in rates["messages_details"]
    assert "samples" in rates["message_stats"]["publish_details"]
    assert api.request("GET", f"/api/queues/%2F/{queue}?lengths_age=soon").status == 400


def test_connection_and_channel_samples(api: Api, running: Running, uid: str) -> None:
    params = pika.ConnectionParameters(
        "127.0.0.1", running.broker.amqp_port, client_properties={"product": uid}
    )
    connection = pika.BlockingConnection(params)
    try:
        first, second = connection.channel(), connection.channel()
        for n in range(3):
            first.basic_publish("", f"nowhere-{uid}", f"m{n}".encode())
        second.basic_publish("", f"nowhere-{uid}", b"m")
        connection.process_data_events(time_limit=0)

        def mine() -> dict[str, object]:
            rows = api.get("/api/connections")
            return next(c for c in rows if c["client_properties"].get("product") == uid)

        name = mine()["name"]
        quoted = quote(name, safe="")
        hour = "msg_rates_age=3600&msg_rates_incr=60"

        def published(path: str, count: int) -> bool:
            stats = api.get(path)["message_stats"]
            samples = stats["publish_details"]["samples"]
            return stats["publish"] == count and bool(samples) and samples[0]["sample"] == count

        wait_for(lambda: published(f"/api/connections/{quoted}?{hour}", 4))
        channel = quote(f"{name} ({first.channel_number})", safe="")
        wait_for(lambda: published(f"/api/channels/{channel}?{hour}", 3))
        # Without msg_rates_age, rates only (as RabbitMQ); a closed channel still counts.
        assert (
            "samples"
            not in api.get(f"/api/connections/{quoted}")["message_stats"]["publish_details"]
        )
        second.close()
        wait_for(lambda: mine()["channels"] == 1)
        closed_at = time.time() * 1000 + 5

        def sampled_since_the_close() -> list[dict[str, float]]:
            stats = api.get(f"/api/connections/{quoted}?msg_rates_age=60&msg_rates_incr=0.1")
            samples: list[dict[str, float]] = stats["message_stats"]["publish_details"]["samples"]
            return samples if samples[0]["timestamp"] > closed_at else []

        wait_for(lambda: bool(sampled_since_the_close()))
        values = [row["sample"] for row in sampled_since_the_close()]
        assert values[0] == 4 and values == sorted(values, reverse=True)  # never drops
        connection.close()
        assert api.request("GET", f"/api/connections/{quoted}?{hour}").status == 404
    finally:
        if connection.is_open:
            connection.close()
