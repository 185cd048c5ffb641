"""The HTTP API against RabbitMQ's documented shapes, with real clients on both sides."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from admin_helpers import Api, Running, serving, wait_for

from pigeon.broker import Broker
from pigeon.config import Config

QUEUE_FIELDS = {
    "name",
    "vhost",
    "node",
    "type",
    "state",
    "durable",
    "auto_delete",
    "exclusive",
    "arguments",
    "consumers",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "messages_details",
    "message_stats",
    "policy",
}
EXCHANGE_FIELDS = {"name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"}
BINDING_FIELDS = {
    "source",
    "vhost",
    "destination",
    "destination_type",
    "routing_key",
    "arguments",
    "properties_key",
}


@pytest.fixture
def connection(running: Running) -> Iterator[pika.BlockingConnection]:
    connection = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    yield connection
    if connection.is_open:
        connection.close()


def test_overview_shape(api: Api) -> None:
    overview = api.get("/api/overview")
    assert {
        "rabbitmq_version",
        "cluster_name",
        "node",
        "message_stats",
        "queue_totals",
        "object_totals",
        "listeners",
        "exchange_types",
    } <= set(overview)
    assert set(overview["object_totals"]) == {
        "connections",
        "channels",
        "consumers",
        "exchanges",
        "queues",
    }
    assert {"messages", "messages_ready", "messages_unacknowledged"} <= set(
        overview["queue_totals"]
    )
    assert {x["name"] for x in overview["exchange_types"]} == {
        "direct",
        "fanout",
        "topic",
        "headers",
    }
    assert {"amqp", "http"} == {listener["protocol"] for listener in overview["listeners"]}


def test_whoami_and_nodes(api: Api) -> None:
    assert api.get("/api/whoami") == {"name": "guest", "tags": ["administrator"]}
    (node,) = api.get("/api/nodes")
    assert node["running"] is True
    assert node["mem_used"] > 0 and node["fd_total"] > 0 and node["disk_free"] > 0


def test_queue_declare_list_and_errors(api: Api, uid: str) -> None:
    name = f"api-q-{uid}"
    path = f"/api/queues/%2F/{name}"
    created = api.request("PUT", path, {"durable": True, "arguments": {"x-max-length": 5}})
    assert created.status == 201
    assert (
        api.request("PUT", path, {"durable": True, "arguments": {"x-max-length": 5}}).status == 204
    )
    queue = api.get(path)
    assert set(queue) >= QUEUE_FIELDS
    assert queue["arguments"] == {"x-max-length": 5} and queue["durable"] is True
    assert name in {q["name"] for q in api.get("/api/queues/%2F")}
    inequivalent = api.request("PUT", path, {"durable": False})
    assert inequivalent.status == 400
    assert "inequivalent arg 'durable'" in inequivalent.json()["reason"]
    assert api.request("DELETE", path).status == 204
    missing = api.request("GET", path)
    assert missing.status == 404 and missing.json()["error"] == "Object Not Found"


def test_a_quorum_queue_reports_its_type_and_members(api: Api, uid: str) -> None:
    path = f"/api/queues/%2F/api-qq-{uid}"
    quorum = {"durable": True, "arguments": {"x-queue-type": "quorum"}}
    assert api.request("PUT", path, quorum).status == 201
    queue = api.get(path)
    # One node: it leads, and is the only member (replication factor 1).
    assert queue["type"] == "quorum" and queue["leader"] == queue["node"]
    assert queue["members"] == queue["online"] == [queue["node"]]
    assert queue["messages_dlx"] == 0
    api.request(
        "POST",
        "/api/exchanges/%2F/amq.default/publish",
        {
            "routing_key": f"api-qq-{uid}",
            "payload": "p",
            "payload_encoding": "string",
            "properties": {},
        },
    )
    get = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
    counts = [
        api.request("POST", f"{path}/get", get).json()[0]["properties"]["headers"] for _ in range(2)
    ]
    assert counts == [{"x-delivery-count": 0}, {"x-delivery-count": 1}]
    refused = api.request(
        "PUT",
        f"/api/queues/%2F/api-qq-t-{uid}",
        {"durable": False, "arguments": {"x-queue-type": "quorum"}},
    )
    assert refused.status == 400
    assert refused.json()["reason"] == (
        f"invalid property 'non-durable' for queue 'api-qq-t-{uid}' in vhost '/'"
    )
    assert api.request("DELETE", path).status == 204
    classic = f"/api/queues/%2F/api-cq-{uid}"
    api.request("PUT", classic, {"durable": True})
    assert api.get(classic)["type"] == "classic" and "leader" not in api.get(classic)
    api.request("DELETE", classic)


def test_exchange_binding_publish_get_purge(api: Api, uid: str) -> None:
    exchange, queue = f"api-x-{uid}", f"api-bq-{uid}"
    assert api.request("PUT", f"/api/exchanges/%2F/{exchange}", {"type": "topic"}).status == 201
    assert set(api.get(f"/api/exchanges/%2F/{exchange}")) >= EXCHANGE_FIELDS
    api.request("PUT", f"/api/queues/%2F/{queue}", {"durable": False})
    bound = api.request(
        "POST", f"/api/bindings/%2F/e/{exchange}/q/{queue}", {"routing_key": "a.*", "arguments": {}}
    )
    assert bound.status == 201
    (binding,) = api.get(f"/api/bindings/%2F/e/{exchange}/q/{queue}")
    assert set(binding) == BINDING_FIELDS and binding["properties_key"] == "a.%2A"
    for key, routed in (("a.b", True), ("b.a", False)):
        answer = api.request(
            "POST",
            f"/api/exchanges/%2F/{exchange}/publish",
            {
                "routing_key": key,
                "payload": "hello",
                "payload_encoding": "string",
                "properties": {"content_type": "text/plain", "headers": {"n": 1}},
            },
        )
        assert answer.json() == {"routed": routed}
    got = api.request(
        "POST",
        f"/api/queues/%2F/{queue}/get",
        {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"},
    ).json()
    assert len(got) == 1
    assert got[0]["payload"] == "hello" and got[0]["routing_key"] == "a.b"
    assert got[0]["properties"] == {"content_type": "text/plain", "headers": {"n": 1}}
    assert got[0]["payload_encoding"] == "string" and got[0]["redelivered"] is False
    # Requeued: still there, now redelivered.
    again = api.request(
        "POST",
        f"/api/queues/%2F/{queue}/get",
        {"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"},
    )
    assert again.json()[0]["redelivered"] is True
    assert base64.b64decode(again.json()[0]["payload"]) == b"hello"
    assert api.get(f"/api/queues/%2F/{queue}")["messages"] == 0
    api.request(
        "POST",
        "/api/exchanges/%2F/amq.default/publish",
        {"routing_key": queue, "payload": "x", "payload_encoding": "string", "properties": {}},
    )
    assert api.request("DELETE", f"/api/queues/%2F/{queue}/contents").status == 204
    assert api.get(f"/api/queues/%2F/{queue}")["messages_ready"] == 0
    unbind = f"/api/bindings/%2F/e/{exchange}/q/{queue}/{binding['properties_key']}"
    assert api.request("DELETE", unbind).status == 204
    assert api.get(f"/api/bindings/%2F/e/{exchange}/q/{queue}") == []


def test_default_exchange_bindings_are_listed(api: Api, uid: str) -> None:
    queue = f"api-dq-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    rows = api.get(f"/api/queues/%2F/{queue}/bindings")
    assert rows == [
        {
            "source": "",
            "vhost": "/",
            "destination": queue,
            "destination_type": "queue",
            "routing_key": queue,
            "arguments": {},
            "properties_key": queue,
        }
    ]


def test_listing_sort_columns_and_pages(api: Api, uid: str) -> None:
    for letter in "cab":
        api.request("PUT", f"/api/queues/%2F/page-{uid}-{letter}", {})
    rows = api.get(f"/api/queues/%2F?name=page-{uid}&sort=name&columns=name,vhost")
    assert rows == [{"name": f"page-{uid}-{x}", "vhost": "/"} for x in "abc"]
    page = api.get(f"/api/queues/%2F?name=page-{uid}&sort=name&page=2&page_size=2")
    assert page["total_count"] == 3 or page["filtered_count"] == 3
    assert page["page_count"] == 2 and [q["name"] for q in page["items"]] == [f"page-{uid}-c"]


def test_authentication_and_tags(api: Api, uid: str) -> None:
    missing = api.request("GET", "/api/overview", auth=False)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Basic")
    # A path that does not exist is a 404 with or without credentials, as on RabbitMQ.
    for auth in (False, True):
        nowhere = api.request("GET", "/api/no-such-thing", auth=auth)
        assert nowhere.status == 404 and "WWW-Authenticate" not in nowhere.headers
        assert nowhere.json()["error"] == "Object Not Found"
    assert api.as_user("guest", "wrong").request("GET", "/api/overview").status == 401
    for tags, overview, users in (
        ("", 401, 401),
        ("management", 200, 401),
        ("monitoring", 200, 401),
        ("administrator", 200, 200),
    ):
        name = f"u-{uid}-{tags or 'none'}"
        assert (
            api.request("PUT", f"/api/users/{name}", {"password": "pw", "tags": tags}).status == 201
        )
        user = api.as_user(name, "pw")
        assert user.request("GET", "/api/overview").status == overview, tags
        assert user.request("GET", "/api/users").status == users, tags
    monitor = api.as_user(f"u-{uid}-monitoring", "pw")
    assert monitor.request("GET", "/api/nodes").status == 200
    assert api.as_user(f"u-{uid}-management", "pw").request("GET", "/api/nodes").status == 401


def test_permissions_apply_to_api_actions(api: Api, uid: str) -> None:
    name = f"limited-{uid}"
    api.request("PUT", f"/api/users/{name}", {"password": "pw", "tags": ["management"]})
    assert (
        api.request(
            "PUT",
            f"/api/permissions/%2F/{name}",
            {"configure": "^mine-", "write": ".*", "read": ".*"},
        ).status
        == 201
    )
    user = api.as_user(name, "pw")
    assert user.request("PUT", f"/api/queues/%2F/mine-{uid}", {}).status == 201
    refused = user.request("PUT", f"/api/queues/%2F/theirs-{uid}", {})
    assert refused.status == 401
    assert refused.json()["reason"] == (
        f"access to queue 'theirs-{uid}' in vhost '/' refused for user '{name}'"
    )
    assert {
        "user": name,
        "vhost": "/",
        "configure": "^mine-",
        "write": ".*",
        "read": ".*",
    } in api.get("/api/permissions")


def test_user_hash_is_rabbitmqs_scheme(api: Api, uid: str) -> None:
    salt = b"\x01\x02\x03\x04"
    stored = base64.b64encode(salt + hashlib.sha256(salt + b"secret").digest()).decode()
    name = f"hashed-{uid}"
    api.request(
        "PUT",
        f"/api/users/{name}",
        {
            "password_hash": stored,
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "management",
        },
    )
    assert api.get(f"/api/users/{name}")["password_hash"] == stored
    assert api.as_user(name, "secret").request("GET", "/api/whoami").status == 200


def test_definitions_round_trip(api: Api, uid: str) -> None:
    definitions = {
        "users": [{"name": f"def-{uid}", "password_hash": "", "tags": "administrator"}],
        "vhosts": [{"name": f"vh-{uid}"}],
        "permissions": [
            {
                "user": f"def-{uid}",
                "vhost": f"vh-{uid}",
                "configure": ".*",
                "write": ".*",
                "read": ".*",
            }
        ],
        "exchanges": [
            {
                "name": "orders",
                "vhost": f"vh-{uid}",
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "queues": [
            {
                "name": "billing",
                "vhost": f"vh-{uid}",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-message-ttl": 1000},
            }
        ],
        "bindings": [
            {
                "source": "orders",
                "vhost": f"vh-{uid}",
                "destination": "billing",
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        ],
        "policies": [],
        "parameters": [],
    }
    assert api.request("POST", "/api/definitions", definitions).status == 204
    exported = api.get("/api/definitions")
    mine = {
        k: [r for r in v if isinstance(r, dict) and r.get("vhost") == f"vh-{uid}"]
        for k, v in exported.items()
        if k in ("exchanges", "queues", "bindings")
    }
    assert mine == {k: definitions[k] for k in ("exchanges", "queues", "bindings")}
    assert {
        "name": f"vh-{uid}",
        "limits": [],
        "metadata": {"description": "", "tags": []},
    } in exported["vhosts"]
    assert any(
        u["name"] == f"def-{uid}" and u["tags"] == ["administrator"] for u in exported["users"]
    )
    bad = api.request(
        "POST", "/api/definitions", {"queues": [{"name": "x", "vhost": f"nowhere-{uid}"}]}
    )
    assert bad.status == 400


def test_body_size_is_capped(api: Api) -> None:
    answer = api.request("POST", "/api/definitions", raw=b"{" + b" " * (21 * 1024 * 1024))
    assert answer.status == 413


def test_health_checks(api: Api, running: Running) -> None:
    for check in ("alarms", "local-alarms", "virtual-hosts", "ready-to-serve-clients"):
        assert api.get(f"/api/health/checks/{check}") == {"status": "ok"}
    port = running.broker.amqp_port
    assert api.get(f"/api/health/checks/port-listener/{port}")["status"] == "ok"
    closed = api.request("GET", "/api/health/checks/port-listener/1")
    assert closed.status == 503 and closed.json()["status"] == "failed"


def test_a_resource_alarm_shows_in_health_checks_and_nodes(tmp_path: Path) -> None:
    # More free disk wanted than any disk has: the resource monitor raises the disk alarm
    # at its first check and keeps it (an alarm set by hand, its next check cleared).
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path,
        management_port=None,
        disk_free_limit=1 << 60,
    )
    with serving(config) as running:
        api = running.api
        failed = api.request("GET", "/api/health/checks/alarms")
        assert failed.status == 503
        assert failed.json()["alarms"] == [
            {"node": api.get("/api/nodes")[0]["name"], "resource": "disk"}
        ]
        node = api.get("/api/nodes")[0]
        assert (node["disk_free_alarm"], node["mem_alarm"]) == (True, False)
    with serving(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path, management_port=None)
    ) as running:
        assert running.api.get("/api/health/checks/alarms") == {"status": "ok"}


def test_vhost_lifecycle(api: Api, uid: str) -> None:
    name = f"life-{uid}"
    assert api.request("PUT", f"/api/vhosts/{name}", {}).status == 201
    assert api.get(f"/api/vhosts/{name}")["name"] == name
    assert api.request("PUT", f"/api/queues/{name}/q", {}).status == 201
    api.request(
        "POST",
        f"/api/exchanges/{name}/amq.default/publish",
        {"routing_key": "q", "payload": "x", "payload_encoding": "string"},
    )
    vhost = api.get(f"/api/vhosts/{name}")
    assert vhost["messages"] == 1 and vhost["message_stats"]["publish"] == 1
    assert api.request("DELETE", f"/api/vhosts/{name}").status == 204
    assert api.request("GET", f"/api/queues/{name}/q").status == 404


def test_connections_channels_consumers(
    api: Api, connection: pika.BlockingConnection, uid: str
) -> None:
    channel = connection.channel()
    queue = f"api-cq-{uid}"
    channel.queue_declare(queue)
    channel.basic_qos(prefetch_count=7)
    channel.basic_consume(queue, lambda *args: None, consumer_tag=f"tag-{uid}")
    (mine,) = [
        c
        for c in api.get("/api/connections")
        if c["client_properties"].get("product") == "Pika Python Client Library"
        and c["channels"] == 1
    ]
    assert mine["user"] == "guest" and mine["vhost"] == "/" and mine["protocol"] == "AMQP 0-9-1"
    # The session's neutral description plus AMQP's own fields, in RabbitMQ's row.
    assert (mine["ssl"], mine["auth_mechanism"]) == (False, "PLAIN")
    assert {"timeout", "frame_max", "channel_max"} <= set(mine)
    assert mine["frame_max"] == 131072 and mine["channel_max"] == 2047
    channels = api.get(f"/api/connections/{quote(mine['name'], safe='')}/channels")
    assert channels[0]["prefetch_count"] == 7 and channels[0]["consumer_count"] == 1
    assert (channels[0]["confirm"], channels[0]["transactional"]) == (False, False)
    assert channels[0]["global_prefetch_count"] == 0
    consumers = [c for c in api.get("/api/consumers") if c["consumer_tag"] == f"tag-{uid}"]
    assert consumers[0]["prefetch_count"] == 7
    assert consumers[0]["queue"] == {"name": queue, "vhost": "/"}
    assert consumers[0]["channel_details"]["connection_name"] == mine["name"]
    closed = api.request(
        "DELETE",
        f"/api/connections/{quote(mine['name'], safe='')}",
        headers={"X-Reason": "maintenance"},
    )
    assert closed.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as raised:
        connection.process_data_events(time_limit=5)
    assert raised.value.reply_code == 320
    assert raised.value.reply_text == "CONNECTION_FORCED - maintenance"
    wait_for(lambda: all(c["name"] != mine["name"] for c in api.get("/api/connections")))


def test_changes_through_the_api_are_audited(tmp_path: Path) -> None:
    log_file = tmp_path / "audit.jsonl"
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0, audit_log=log_file
    )
    with Broker.in_thread(config) as broker:
        assert broker.management_url is not None
        api = Api(broker.management_url.rstrip("/"))
        user = {"password": "pw", "tags": []}
        assert api.request("PUT", "/api/users/auditee", user).status == 201
        assert (
            api.request(
                "PUT",
                "/api/permissions/%2F/auditee",
                {"configure": "", "write": ".*", "read": ".*"},
            ).status
            == 201
        )
        assert api.request("DELETE", "/api/users/auditee").status == 204
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    changes = [
        (e.get("action"), e.get("actor")) for e in events if e.get("event") == "config.changed"
    ]
    assert changes == [("user.put", "guest"), ("permission.put", "guest"), ("user.delete", "guest")]


def test_topic_permissions_through_the_api_apply_to_amqp(
    api: Api, running: Running, uid: str
) -> None:
    name = f"topic-{uid}"
    api.request("PUT", f"/api/users/{name}", {"password": "pw", "tags": []})
    api.request(
        "PUT", f"/api/permissions/%2F/{name}", {"configure": ".*", "write": ".*", "read": ".*"}
    )
    assert (
        api.request(
            "PUT",
            f"/api/topic-permissions/%2F/{name}",
            {"exchange": "amq.topic", "write": "^eu\\.", "read": ".*"},
        ).status
        == 201
    )
    assert api.get(f"/api/topic-permissions/%2F/{name}") == [
        {"user": name, "vhost": "/", "exchange": "amq.topic", "write": "^eu\\.", "read": ".*"}
    ]
    exported = api.get("/api/definitions")["topic_permissions"]
    assert {
        "user": name,
        "vhost": "/",
        "exchange": "amq.topic",
        "write": "^eu\\.",
        "read": ".*",
    } in exported
    url = running.broker.amqp_url.replace("guest:guest", f"{name}:pw")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("amq.topic", "eu.orders", b"allowed")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish("amq.topic", "us.orders", b"refused")
        assert refused.value.reply_code == 403
        assert "write access to topic 'us.orders'" in refused.value.reply_text
    finally:
        if connection.is_open:
            connection.close()
    assert api.request("DELETE", f"/api/topic-permissions/%2F/{name}").status == 204
    assert api.get(f"/api/topic-permissions/%2F/{name}") == []
    api.request("DELETE", f"/api/users/{name}")


def test_exclusive_queue_is_shown_but_locked(
    api: Api, uid: str, connection: pika.BlockingConnection
) -> None:
    # RabbitMQ 3.10: the management API shows another connection's exclusive queue and
    # its bindings, and refuses every operation on it with the 405 text.
    channel = connection.channel()
    name = f"excl-{uid}"
    channel.queue_declare(name, exclusive=True)
    queue = api.get(f"/api/queues/%2F/{name}")
    assert queue["exclusive"] is True
    assert api.request("GET", f"/api/queues/%2F/{name}/bindings").status == 200
    assert api.request("GET", f"/api/bindings/%2F/e/amq.direct/q/{name}").status == 200
    for method, path in [
        ("DELETE", f"/api/queues/%2F/{name}"),
        ("DELETE", f"/api/queues/%2F/{name}/contents"),
    ]:
        refused = api.request(method, path)
        assert refused.status == 400, (method, path)
        assert b"cannot obtain exclusive access to locked queue" in refused.body


def test_api_checks_what_amqp_checks(api: Api, uid: str) -> None:
    # The same rules as over AMQP (auth.operations): write permission on a new queue's
    # dead-letter exchange, topic permissions on binding keys. RabbitMQ 3.10's API
    # refuses both with 401, as every refusal.
    name = f"dlx-user-{uid}"
    api.request("PUT", f"/api/users/{name}", {"password": "pw", "tags": ["management"]})
    api.request("PUT", f"/api/permissions/%2F/{name}",
                {"configure": "^mine-", "write": "^mine-", "read": ".*"})  # fmt: skip
    api.request("PUT", f"/api/topic-permissions/%2F/{name}",
                {"exchange": "amq.topic", "write": ".*", "read": "^ok\\."})  # fmt: skip
    user = api.as_user(name, "pw")
    refused = user.request("PUT", f"/api/queues/%2F/mine-dlx-{uid}",
                           {"arguments": {"x-dead-letter-exchange": "amq.fanout"}})  # fmt: skip
    assert refused.status == 401
    assert "amq.fanout" in refused.json()["reason"]
    assert user.request("PUT", f"/api/queues/%2F/mine-{uid}", {}).status == 201
    bind = f"/api/bindings/%2F/e/amq.topic/q/mine-{uid}"
    assert user.request("POST", bind, {"routing_key": "no.x"}).status == 401
    assert user.request("POST", bind, {"routing_key": "ok.x"}).status == 201


def test_publish_answers_as_rabbitmq_and_every_consumer_gets_the_message(
    api: Api, uid: str, connection: pika.BlockingConnection
) -> None:
    # RabbitMQ 3.10's API answers 200 for {"priority": 300} and a 300-byte correlation id
    # (checked with a private node) and then fails at delivery; accepted here, they are
    # converted by docs/messages.md's rules so that an AMQP consumer gets them.
    queue = f"props-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    publish = "/api/exchanges/%2F/amq.default/publish"
    for properties in ({"priority": 300}, {"correlation_id": "x" * 300, "message_id": "m"}):
        routed = api.request("POST", publish, {"routing_key": queue, "payload": "ok",
                                               "payload_encoding": "string",
                                               "properties": properties})  # fmt: skip
        assert (routed.status, routed.json()) == (200, {"routed": True})
    for properties, reason in [
        ({"expiration": "soon"}, "406 PRECONDITION_FAILED - invalid expiration 'soon': no_integer"),
        (
            {"delivery_mode": 3},
            "406 PRECONDITION_FAILED - invalid message: {delivery_mode_unknown,3}",
        ),
    ]:
        refused = api.request("POST", publish, {"routing_key": queue, "payload": "x",
                                                "payload_encoding": "string",
                                                "properties": properties})  # fmt: skip
        assert refused.status == 400
        assert refused.json()["reason"] == reason
    channel = connection.channel()
    method, first, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"ok" and first.priority == 255
    method, second, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and method.message_count == 0
    assert second.correlation_id is None and second.message_id == "m"
    assert second.headers == {"x-correlation-id": "x" * 300}
