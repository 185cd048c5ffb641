"""Publish and subscribe through Pigeon with paho-mqtt, MQTT 3.1.1 and 5.0."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mqtt_session_clients import Client, wait_for

VERSIONS = [4, 5]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_a_message_reaches_a_wildcard_subscriber(
    clients: Callable[..., Client], version: int, qos: int
) -> None:
    sub = clients(version)
    sub.connect()
    codes = sub.subscribe(f"room{version}{qos}/+/temp", qos)
    assert [int(getattr(c, "value", c)) for c in codes] == [qos]
    pub = clients(version)
    pub.connect()
    pub.paho.publish(f"room{version}{qos}/kitchen/temp", b"21.5", qos=qos).wait_for_publish(5)
    (message,) = sub.received()
    assert (message.topic, message.payload, message.qos) == (
        f"room{version}{qos}/kitchen/temp",
        b"21.5",
        qos,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_overlapping_subscriptions_deliver_once_at_the_highest_granted_qos(
    clients: Callable[..., Client], version: int
) -> None:
    sub = clients(version)
    sub.connect()
    sub.subscribe(f"ov{version}/#", 0)
    sub.subscribe(f"ov{version}/a/+", 1)
    pub = clients(version)
    pub.connect()
    pub.paho.publish(f"ov{version}/a/b", b"x", qos=2).wait_for_publish(5)
    pub.paho.publish(f"ov{version}/a/b/c", b"y", qos=1).wait_for_publish(5)
    messages = sub.received(2)
    by_payload = {m.payload: m.qos for m in messages}
    assert by_payload == {b"x": 1, b"y": 0}  # [MQTT-3.3.5-1]
    with pytest.raises(AssertionError):
        sub.received(3, timeout=0.3)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_wrong_password_is_refused_with_the_versions_code(
    clients: Callable[..., Client], version: int
) -> None:
    client = clients(version)
    client.paho.username_pw_set("guest", "wrong")
    reason = client.connect()
    # (paho reports a 3.1.1 return code 4 as 0x86; the wire bytes: test_mqtt_session_raw)
    assert int(getattr(reason, "value", reason)) == 0x86


def test_a_second_connection_takes_the_session_over(clients: Callable[..., Client]) -> None:
    first = clients(5, client_id="takeover-5")
    first.connect()
    second = clients(5, client_id="takeover-5")
    assert second.connect() == 0
    reason = wait_for(lambda: first.disconnected)
    assert int(getattr(reason, "value", reason)) == 0x8E


@pytest.mark.parametrize("version", VERSIONS)
def test_the_will_is_published_when_the_connection_drops(
    clients: Callable[..., Client], version: int
) -> None:
    watcher = clients(version)
    watcher.connect()
    watcher.subscribe(f"will{version}/status", 1)
    dying = clients(version)
    dying.paho.will_set(f"will{version}/status", b"gone", qos=1)
    dying.connect()
    dying.drop()  # no DISCONNECT
    (message,) = watcher.received()
    assert message.payload == b"gone"


@pytest.mark.parametrize("version", VERSIONS)
def test_no_will_after_a_normal_disconnect(clients: Callable[..., Client], version: int) -> None:
    watcher = clients(version)
    watcher.connect()
    watcher.subscribe(f"nowill{version}/status", 1)
    leaving = clients(version)
    leaving.paho.will_set(f"nowill{version}/status", b"gone", qos=1)
    leaving.connect()
    leaving.stop()
    with pytest.raises(AssertionError):
        watcher.received(timeout=0.5)
