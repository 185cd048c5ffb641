"""CONNECT and CONNACK, keep-alive and session takeover, as paho-mqtt (3.1.1 and 5.0) and a
raw socket see them."""

from __future__ import annotations

import time

import pytest
from mqtt_client_kit import (
    Client,
    MqttTarget,
    connect_packet,
    raw_connect,
    read_until_closed,
    wait_until,
)

# CONNACK return codes (3.1.1 §3.2.2.3) and reason codes (5.0 §3.2.2.2)
V5_BAD_CREDENTIALS = 0x86
V5_NOT_AUTHORIZED = 0x87
V5_SESSION_TAKEN_OVER = 0x8E


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_connect_is_accepted(client, v5: bool) -> None:
    c = client(v5=v5)
    connack = c.connect()
    assert connack.value == 0
    assert connack.session_present is False


def test_unsupported_protocol_level_is_refused(mqtt_target: MqttTarget, names) -> None:
    """[MQTT-3.1.2-2]: a level the broker does not support gets CONNACK 0x01 (3.1.1's
    form; 5.0 allows 0x84 Unsupported Protocol Version) and the connection is closed."""
    sock, reply = raw_connect(mqtt_target, connect_packet(names.client_id(), level=7))
    with sock:
        reply += read_until_closed(sock, 5)
    assert reply in (b"\x20\x02\x00\x01", b"\x20\x03\x00\x84\x00"), reply.hex()


def test_empty_client_id_without_clean_session_is_rejected(mqtt_target: MqttTarget) -> None:
    """[MQTT-3.1.3-8]: 3.1.1, zero-length client id and clean session 0: CONNACK 0x02."""
    sock, reply = raw_connect(mqtt_target, connect_packet("", level=4, clean=False))
    with sock:
        reply += read_until_closed(sock, 5)
    assert reply == b"\x20\x02\x00\x02", reply.hex()


def test_empty_client_id_with_clean_session_is_accepted(mqtt_target: MqttTarget) -> None:
    """[MQTT-3.1.3-6]: 3.1.1 with clean session 1 and no client id: the broker makes one."""
    sock, reply = raw_connect(mqtt_target, connect_packet("", level=4, clean=True))
    with sock:
        assert reply == b"\x20\x02\x00\x00", reply.hex()


def test_assigned_client_identifier(mqtt_target: MqttTarget) -> None:
    """5.0 §3.2.2.3.7: an empty client id gets an Assigned Client Identifier in CONNACK."""
    c = Client(mqtt_target, "")
    try:
        connack = c.connect()
        assigned = connack.prop("AssignedClientIdentifier")
        assert isinstance(assigned, str)
        assert assigned
    finally:
        c.stop()


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_bad_credentials_are_refused(mqtt_target: MqttTarget, names, v5: bool) -> None:
    """A known user with a wrong password is refused: CONNACK 0x04 Bad user name or
    password or 0x05 Not authorized (3.1.1; paho reports them as 5.0's 0x86 and 0x87),
    0x86 or 0x87 (5.0). Mosquitto answers 0x05 / 0x87. Runs only where the target has
    users (Pigeon; Mosquitto with this folder's password file)."""
    if mqtt_target.username is None:
        pytest.skip("the target has no users (give user:password in PIGEON_TEST_MQTT_URL)")
    c = Client(
        mqtt_target, names.client_id(), v5=v5, credentials=(mqtt_target.username, "wrong-pw")
    )
    connack = c.connect(expect_ok=False)
    c.stop()
    assert connack.value in (V5_BAD_CREDENTIALS, V5_NOT_AUTHORIZED)


def test_good_credentials_are_accepted(mqtt_target: MqttTarget, names) -> None:
    if mqtt_target.username is None:
        pytest.skip("the target has no users (give user:password in PIGEON_TEST_MQTT_URL)")
    c = Client(mqtt_target, names.client_id())
    assert c.connect().value == 0
    c.stop()


@pytest.mark.parametrize("level", [4, 5], ids=["3.1.1", "5.0"])
def test_keep_alive_closes_a_silent_client_after_one_and_a_half_times(
    mqtt_target: MqttTarget, names, level: int, mosquitto_deviates
) -> None:
    """[MQTT-3.1.2-24]: no packet within 1.5 x keep-alive: the broker closes the
    connection (keep-alive 4 s: not before 4 s, and by 6 s plus scheduling slack)."""
    mosquitto_deviates(
        "2.0.11 checks keep-alives periodically: a client silent for keep-alive 4 s is"
        " closed after 6 to 12 s",
        strict=False,
    )
    sock, reply = raw_connect(
        mqtt_target, connect_packet(names.client_id(), level=level, keepalive=4)
    )
    start = time.monotonic()
    with sock:
        assert reply[:1] == b"\x20", reply.hex()
        rest = read_until_closed(sock, 15)
    elapsed = time.monotonic() - start
    assert 4.0 <= elapsed <= 7.5, elapsed
    assert rest in (b"", b"\xe0\x01\x8d", b"\xe0\x02\x8d\x00"), rest.hex()  # 5.0: 0x8D


def test_keep_alive_is_kept_by_pings(client) -> None:
    """A client that pings (paho does, every keep-alive) stays connected past 1.5x."""
    c = client()
    c.connect(keepalive=1)
    time.sleep(2.5)  # the time that passes is the test: two keep-alive periods and more
    assert c.connected.is_set()
    assert c.disconnects.empty()


def test_server_keep_alive(mqtt_target: MqttTarget, client) -> None:
    """5.0 §3.2.2.3.14: a broker that wants a shorter keep-alive than the client asked
    for says so in CONNACK; the value is never longer than the client's. Against the
    Mosquitto of README.md (max_keepalive 60) it must be 60."""
    c = client()
    connack = c.connect(keepalive=65535)
    server_keep_alive = connack.prop("ServerKeepAlive")
    if mqtt_target.mosquitto:
        assert server_keep_alive == 60
    if server_keep_alive is not None:
        assert 0 < server_keep_alive <= 65535


def test_session_takeover_5(client, mosquitto_deviates) -> None:
    """[MQTT-3.1.4-3]: a second connection with the same client id takes over; 5.0: the
    old one gets DISCONNECT 0x8E Session taken over (§3.14.2.1), then is closed."""
    mosquitto_deviates("2.0.11 closes the old connection without sending DISCONNECT 0x8E")
    first = client("same")
    first.connect()
    second = client("same")
    assert second.connect().value == 0
    reason, _ = first.disconnects.get(timeout=10)
    assert reason == V5_SESSION_TAKEN_OVER
    assert second.connected.is_set()


def test_session_takeover_311(client, names) -> None:
    """3.1.1: the old connection is closed (no DISCONNECT from server in 3.1.1); the
    taken-over session keeps its subscription for the new connection (clean session 0)."""
    first = client("same", v5=False, clean=False)
    first.connect()
    first.subscribe(names.topic("t"), qos=1)
    second = client("same", v5=False, clean=False)
    connack = second.connect()
    assert connack.session_present is True
    first.disconnects.get(timeout=10)
    wait_until(lambda: not first.connected.is_set(), what="the old connection to close")
    second.publish(names.topic("t"), b"still subscribed", qos=1)
    (m,) = second.expect(1)
    assert m.payload == b"still subscribed"
    second.disconnect()
    client("same", v5=False, clean=True).connect()  # ends the stored session
