"""MQTT over TLS and over secure WebSocket, and TLS client certificates as logins.

Every certificate is made with ``cryptography`` (``mqtt_pki``); clients are paho
over TLS on loopback, and raw TLS sockets where the exact CONNACK bytes matter.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from mqtt_pki import Issuer, Pair, authority, client_context, issue, subject
from mqtt_session_clients import Client, wait_for

from pigeon.auth.sasl import certificate_distinguished_name, certificate_login_name
from pigeon.auth.users import PermissionSet
from pigeon.broker import Broker
from pigeon.config import Config

CERT_USER = "mqtt-cert-user"
ORGANIZATION = "Pigeon tests"
DN_USER = f"CN={CERT_USER},O={ORGANIZATION},C=GB"


@dataclass(frozen=True)
class Pki:
    ca: Issuer
    server: Pair
    client: Pair  # C=GB, O=Pigeon tests, CN=mqtt-cert-user
    stranger: Pair  # a valid chain whose names are nobody's


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("mqtt-pki")
    ca = authority(folder)
    return Pki(
        ca,
        issue(folder, "server", subject("127.0.0.1"), ca, server=True),
        issue(folder, "client", subject(CERT_USER, organization=ORGANIZATION), ca),
        issue(folder, "stranger", subject("nobody-here", organization=ORGANIZATION), ca),
    )


def _config(pki: Pki, **settings: Any) -> Config:
    base: dict[str, Any] = {
        "port": 0,
        "mqtt_port": 0,
        "mqtt_ws_port": 0,
        "mqtt_tls_port": 0,
        "mqtt_wss_port": 0,
        "data_dir": None,
        "management_port": None,
        "tls_certfile": pki.server.cert,
        "tls_keyfile": pki.server.key,
        "tls_cafile": pki.ca.pair.cert,
        "tls_verify_peer": True,
    }
    return Config(**{**base, **settings})


def _add_user(broker: Broker, name: str) -> None:
    assert broker.context is not None
    broker.context.users.add_user(name, uuid.uuid4().hex)  # a password nobody knows
    broker.context.users.set_permission("/", name, PermissionSet())


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[Broker]:
    with Broker.in_thread(_config(pki, mqtt_ssl_cert_login=True, management_port=0)) as running:
        _add_user(running, CERT_USER)
        yield running


@pytest.fixture
def tls_clients(broker: Broker, pki: Pki) -> Iterator[Callable[..., Client]]:
    """paho clients over TLS (``websocket=True``: over wss, path /ws)."""
    made: list[Client] = []

    def make(
        version: int = 5, pair: Pair | None = None, *, websocket: bool = False, **kw: Any
    ) -> Client:
        url = broker.mqtt_wss_url if websocket else broker.mqtts_url
        assert url is not None
        port = urlsplit(url).port
        assert port is not None
        client = Client(port, version, transport="websockets" if websocket else "tcp", **kw)
        if websocket:
            client.paho.ws_set_options(path="/ws")
        client.paho.tls_set_context(client_context(pki.ca, pair))
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


def _round_trip(publisher: Client, subscriber: Client, topic: str) -> None:
    assert subscriber.subscribe(topic, 1)[0].value == 1
    publisher.paho.publish(topic, b"over tls", qos=1)
    assert subscriber.received()[0].payload == b"over tls"


@pytest.mark.parametrize("websocket", [False, True], ids=["mqtts", "wss"])
def test_password_login_over_tls(tls_clients: Callable[..., Client], websocket: bool) -> None:
    subscriber = tls_clients(5, websocket=websocket)
    subscriber.paho.username_pw_set("guest", "guest")
    assert subscriber.connect() == 0
    publisher = tls_clients(4, websocket=websocket)
    publisher.paho.username_pw_set("guest", "guest")
    assert publisher.connect() == 0
    _round_trip(publisher, subscriber, f"tls/{uuid.uuid4().hex[:8]}")


def test_the_tls_urls(broker: Broker) -> None:
    assert broker.mqtts_url is not None and broker.mqtt_wss_url is not None
    mqtts, wss = urlsplit(broker.mqtts_url), urlsplit(broker.mqtt_wss_url)
    assert (mqtts.scheme, mqtts.hostname) == ("mqtts", "127.0.0.1")
    assert (wss.scheme, wss.path) == ("wss", "/ws")
    assert mqtts.port not in (None, 8883, broker.mqtt_port) and wss.port not in (None, 15676)


def test_no_tls_listeners_without_a_certificate() -> None:
    with Broker.in_thread(
        Config(port=0, mqtt_port=0, mqtt_ws_port=0, data_dir=None, management_port=None)
    ) as plain:
        assert plain.mqtts_url is None and plain.mqtt_wss_url is None


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("websocket", [False, True], ids=["mqtts", "wss"])
def test_a_client_certificate_logs_in_without_a_password(
    broker: Broker,
    tls_clients: Callable[..., Client],
    pki: Pki,
    version: int,
    websocket: bool,
) -> None:
    subscriber = tls_clients(version, pki.client, websocket=websocket)
    assert subscriber.connect() == 0
    publisher = tls_clients(5, pki.client)
    assert publisher.connect() == 0
    _round_trip(publisher, subscriber, f"cert/{uuid.uuid4().hex[:8]}")
    rows = _connections(broker)
    mine = [
        row for row in rows if row["client_properties"].get("client_id") == subscriber.client_id
    ]
    assert [(row["user"], row["auth_mechanism"], row["ssl"]) for row in mine] == [
        (CERT_USER, "EXTERNAL", True)
    ]


def test_a_username_and_password_come_before_the_certificate(
    broker: Broker, tls_clients: Callable[..., Client], pki: Pki
) -> None:
    client = tls_clients(5, pki.client)
    client.paho.username_pw_set("guest", "guest")
    assert client.connect() == 0
    rows = [
        r
        for r in _connections(broker)
        if r["client_properties"].get("client_id") == client.client_id
    ]
    assert [row["user"] for row in rows] == ["guest"]


# -- refusals, as raw bytes over TLS --------------------------------------------------


def _string(text: bytes) -> bytes:
    return struct.pack(">H", len(text)) + text


def connect_packet(version: int, client_id: bytes, properties: bytes = b"") -> bytes:
    """CONNECT with a clean session and no username (5.0: with ``properties``)."""
    body = _string(b"MQTT") + bytes([version, 0x02]) + struct.pack(">H", 60)
    if version == 5:
        body += bytes([len(properties)]) + properties
    body += _string(client_id)
    return bytes([0x10, len(body)]) + body


def exchange(sock: socket.socket, packet: bytes) -> tuple[bytes, bool]:
    """The answer (one packet) to ``packet``, and whether the server closed after it
    (an accepted CONNECT's connection stays open, and is not waited on)."""
    sock.sendall(packet)
    answer = b""
    while len(answer) < 2 or len(answer) < 2 + answer[1]:
        chunk = sock.recv(64)
        if not chunk:
            return answer, True
        answer += chunk
    if answer[:1] == b"\x20" and answer[3:4] == b"\x00":
        return answer, False  # accepted: the connection stays
    try:
        closed = sock.recv(64) == b""
    except (ConnectionResetError, ssl.SSLError):
        closed = True
    return answer, closed


def _tls_exchange(broker: Broker, pki: Pki, pair: Pair, packet: bytes) -> tuple[bytes, bool]:
    assert broker.mqtts_url is not None
    port = urlsplit(broker.mqtts_url).port
    with socket.create_connection(("127.0.0.1", port or 0), timeout=5) as raw:
        context = client_context(pki.ca, pair)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            return exchange(sock, packet)


def test_a_certificate_naming_no_user_is_refused_in_3_1_1(broker: Broker, pki: Pki) -> None:
    answer, closed = _tls_exchange(broker, pki, pki.stranger, connect_packet(4, b"tls-raw-4"))
    assert answer == b"\x20\x02\x00\x04"  # bad user name or password
    assert closed


def test_a_certificate_naming_no_user_is_refused_in_5(broker: Broker, pki: Pki) -> None:
    answer, closed = _tls_exchange(broker, pki, pki.stranger, connect_packet(5, b"tls-raw-5"))
    assert answer[:4] == b"\x20\x03\x00\x86"  # 0x86 Bad User Name or Password
    assert closed


def test_certificate_logins_are_off_unless_configured(pki: Pki) -> None:
    """Without mqtt_ssl_cert_login a certificate is only TLS: no username is anonymous
    (the default user, from loopback), never the certificate's user."""
    with Broker.in_thread(_config(pki, mqtt_anonymous="never")) as plain:
        _add_user(plain, CERT_USER)
        answer, _ = _tls_exchange(plain, pki, pki.client, connect_packet(5, b"tls-off"))
        assert answer[:4] == b"\x20\x03\x00\x86"


def test_the_distinguished_name_names_the_user(pki: Pki) -> None:
    config = _config(pki, mqtt_ssl_cert_login=True, ssl_cert_login_from="distinguished_name")
    with Broker.in_thread(config) as dn_broker:
        _add_user(dn_broker, DN_USER)
        answer, closed = _tls_exchange(dn_broker, pki, pki.client, connect_packet(4, b"dn"))
        assert (answer, closed) == (b"\x20\x02\x00\x00", False)
        # The CN alone names no user of this broker.
        _add_user(dn_broker, "nobody-here")
        answer, _ = _tls_exchange(dn_broker, pki, pki.stranger, connect_packet(4, b"dn-2"))
        assert answer == b"\x20\x02\x00\x04"


# -- the management API lists TLS and WebSocket connections ----------------------------


def _connections(broker: Broker) -> list[dict[str, Any]]:
    assert broker.management_url is not None
    request = urllib.request.Request(broker.management_url + "api/connections")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        rows: list[dict[str, Any]] = json.load(response)
    return rows


def test_every_mqtt_listener_is_listed_with_its_port_and_protocol(
    broker: Broker, tls_clients: Callable[..., Client], pki: Pki
) -> None:
    made = [tls_clients(4, pki.client), tls_clients(5, pki.client, websocket=True)]
    for client in made:
        assert client.connect() == 0
    assert broker.mqtts_url is not None and broker.mqtt_wss_url is not None
    expected = {
        made[0].client_id: ("MQTT 3.1.1", urlsplit(broker.mqtts_url).port),
        made[1].client_id: ("Web MQTT 5.0", urlsplit(broker.mqtt_wss_url).port),
    }

    def listed() -> dict[str, tuple[str, int | None]]:
        rows = _connections(broker)
        return {
            row["client_properties"]["client_id"]: (row["protocol"], row["port"])
            for row in rows
            if row["client_properties"].get("client_id") in expected
        }

    assert wait_for(lambda: listed() == expected)
    for row in _connections(broker):
        if row["client_properties"].get("client_id") in expected:
            assert row["name"].endswith(f" -> 127.0.0.1:{row['port']}")
            assert row["name"].startswith(f"127.0.0.1:{row['peer_port']} -> ")


def test_plain_websocket_connections_are_listed(broker: Broker) -> None:
    assert broker.mqtt_ws_url is not None
    client = Client(urlsplit(broker.mqtt_ws_url).port or 0, 4, transport="websockets")
    client.paho.ws_set_options(path="/ws")
    client.paho.username_pw_set("guest", "guest")
    try:
        assert client.connect() == 0
        rows = [
            r
            for r in _connections(broker)
            if r["client_properties"].get("client_id") == client.client_id
        ]
        assert [(r["protocol"], r["port"], r["ssl"]) for r in rows] == [
            ("Web MQTT 3.1.1", urlsplit(broker.mqtt_ws_url).port, False)
        ]
    finally:
        client.stop()


def test_distinguished_names_are_written_as_rfc_4514() -> None:
    # getpeercert()'s subject: RDNs in certificate order, each a tuple of pairs.
    certificate = {
        "subject": (
            (("countryName", "GB"),),
            (("organizationName", "Acme, Inc."),),
            (("organizationalUnitName", "ops"), ("userId", "7")),
            (("commonName", " #bob+<x>; "),),
        )
    }
    assert certificate_distinguished_name(certificate) == (
        "CN=\\ #bob\\+\\<x\\>\\;\\ ,OU=ops+UID=7,O=Acme\\, Inc.,C=GB"
    )
    assert certificate_login_name(certificate, "common_name") == " #bob+<x>; "
    assert certificate_distinguished_name({}) is None
    leading = {"subject": ((("commonName", "#1"),),)}
    assert certificate_distinguished_name(leading) == "CN=\\#1"  # '#' first only


def test_a_web_mqtt_connection_is_closed_through_the_api(
    broker: Broker, tls_clients: Callable[..., Client], pki: Pki
) -> None:
    client = tls_clients(5, pki.client, websocket=True)
    assert client.connect() == 0
    rows = [
        r
        for r in _connections(broker)
        if r["client_properties"].get("client_id") == client.client_id
    ]
    assert len(rows) == 1
    assert broker.management_url is not None
    request = urllib.request.Request(
        broker.management_url + "api/connections/" + urllib.parse.quote(rows[0]["name"], safe=""),
        method="DELETE",
    )
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 204
    wait_for(lambda: client.disconnected is not None)
    assert client.disconnected.value == 0x98  # Administrative action
