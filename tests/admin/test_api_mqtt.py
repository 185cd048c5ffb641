"""MQTT sessions in the management API: their fields, persistent sessions whose client is
away, and an operator's close (DISCONNECT 0x98 for a 5.0 client)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from admin_helpers import Api, Running
from mqtt_helpers import Paho, poll


@pytest.fixture
def port(running: Running) -> int:
    assert running.broker.mqtt_port is not None
    return running.broker.mqtt_port


@pytest.fixture
def clients() -> Iterator[list[Paho]]:
    made: list[Paho] = []
    yield made
    for client in made:
        client.stop()


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _connection(api: Api, client_id: str) -> Any:
    def find() -> Any:
        rows = api.get("/api/connections")
        return next((c for c in rows if c.get("client_id") == client_id), None)

    return poll(find)


def _session(api: Api, client_id: str, **expected: Any) -> Any:
    def find() -> Any:
        for row in api.get("/api/mqtt/sessions"):
            if row["client_id"] == client_id and expected.items() <= row.items():
                return row
        return None

    return poll(find)


def test_a_5_0_connection_shows_its_session(
    api: Api, port: int, clients: list[Paho], running: Running
) -> None:
    client_id = _id("fields5")
    client = Paho(port, client_id)
    clients.append(client)
    client.paho.will_set("wills/x", b"gone")
    client.connect(keepalive=30, expiry=300, clean=False)
    client.subscribe("a/+", 1)
    client.subscribe("b/#", 0)
    row = _connection(api, client_id)
    assert row["protocol"] == "MQTT 5.0"
    assert row["client_properties"] == {"client_id": client_id}
    assert row["name"].endswith(f":{port}") and row["port"] == port
    assert row["keepalive"] == 30
    assert row["clean_sess"] is False
    assert row["session_expiry_interval"] == 300
    assert row["subscriptions"] == 2
    assert row["will_msg"] is True
    assert row["exchange"] == "amq.topic"
    assert row["user"] == row["user_who_performed_action"] == "guest"
    assert row["messages_unacknowledged"] == 0 and row["messages_queued"] == 0
    one = api.get(f"/api/connections/{quote(row['name'], safe='')}")
    assert one["client_id"] == client_id


def test_a_3_1_1_clean_session_shows_as_clean(api: Api, port: int, clients: list[Paho]) -> None:
    client_id = _id("fields4")
    client = Paho(port, client_id, version=4)
    clients.append(client)
    client.connect(keepalive=15)
    row = _connection(api, client_id)
    assert row["protocol"] == "MQTT 3.1.1"
    assert (row["clean_sess"], row["session_expiry_interval"], row["keepalive"]) == (True, 0, 15)
    assert row["will_msg"] is False and row["subscriptions"] == 0


def test_inflight_and_queued_messages_are_counted(api: Api, port: int, clients: list[Paho]) -> None:
    client_id = _id("inflight")
    subscriber = Paho(port, client_id, manual_ack=True)
    publisher = Paho(port, _id("pub"))
    clients.extend([subscriber, publisher])
    subscriber.connect(expiry=0)
    subscriber.paho.subscribe("inflight/t", 1)
    poll(lambda: _connection(api, client_id)["subscriptions"] == 1)
    publisher.connect()
    for n in range(3):
        publisher.paho.publish("inflight/t", f"m{n}".encode(), qos=1).wait_for_publish(5)
    poll(lambda: len(subscriber.messages) == 3)  # received, never acknowledged
    assert poll(lambda: _connection(api, client_id)["messages_unacknowledged"] == 3)


def test_a_persistent_session_is_listed_while_its_client_is_away(
    api: Api, port: int, clients: list[Paho]
) -> None:
    client_id = _id("away")
    client = Paho(port, client_id)
    clients.append(client)
    client.connect(expiry=600, clean=False)
    client.subscribe("away/+", 1)
    online = _session(api, client_id, connected=True)
    assert online["protocol"] == "MQTT 5.0" and online["subscriptions"] == 1
    assert online["queue"] == f"mqtt-subscription-{client_id}qos1"
    client.stop()
    publisher = Paho(port, _id("pub"))
    clients.append(publisher)
    publisher.connect()
    publisher.paho.publish("away/1", b"kept", qos=1).wait_for_publish(5)
    offline = _session(api, client_id, connected=False, messages_queued=1)
    assert offline["connection"] is None
    assert offline["subscriptions"] == 1
    assert offline["session_expiry_interval"] == 600
    assert offline["clean_sess"] is False
    assert offline["vhost"] == "/"
    only = api.get(f"/api/mqtt/sessions/%2F?name={client_id}")
    assert [r["client_id"] for r in only] == [client_id]


def test_closing_a_5_0_connection_from_the_api_sends_disconnect_0x98(
    api: Api, port: int, clients: list[Paho]
) -> None:
    client_id = _id("closed5")
    client = Paho(port, client_id)
    clients.append(client)
    client.connect()
    name = _connection(api, client_id)["name"]
    answer = api.request(
        "DELETE", f"/api/connections/{quote(name, safe='')}", headers={"X-Reason": "bye"}
    )
    assert answer.status == 204
    reason = poll(lambda: client.disconnected)
    assert reason.value == 0x98  # Administrative action
    assert reason.is_failure
    poll(lambda: all(c.get("client_id") != client_id for c in api.get("/api/connections")))


def test_closing_a_3_1_1_connection_from_the_api_closes_it(
    api: Api, port: int, clients: list[Paho]
) -> None:
    client_id = _id("closed4")
    client = Paho(port, client_id, version=4)
    clients.append(client)
    client.connect()
    name = _connection(api, client_id)["name"]
    assert api.request("DELETE", f"/api/connections/{quote(name, safe='')}").status == 204
    poll(lambda: client.disconnected is not None)
    poll(lambda: all(c.get("client_id") != client_id for c in api.get("/api/connections")))
