"""TLS: the amqps listener, client certificates and SASL EXTERNAL.

Every certificate is made here with ``cryptography``: a CA, the server's
certificate for 127.0.0.1, a client certificate whose CN is a user, one
whose CN is nobody, and one from a CA the broker does not trust.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pamqp import commands
from raw_amqp import RawClient, assert_serving

from pigeon.auth.users import PermissionSet
from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.transport.tls import TLSSettings, server_context

CERT_USER = "cert-user"


@dataclass
class Pair:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _issue(
    folder: Path,
    stem: str,
    cn: str,
    issuer: Issuer | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    pair = Pair(folder / f"{stem}.crt", folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair, cert, key


@dataclass
class Pki:
    ca: Pair
    server: Pair
    client: Pair
    stranger: Pair  # valid chain, CN names no user
    rogue: Pair  # signed by a CA the broker does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(folder, "ca", "Pigeon test CA", None, ca=True)
    server, _, _ = _issue(folder, "server", "127.0.0.1", (ca_cert, ca_key), server=True)
    client, _, _ = _issue(folder, "client", CERT_USER, (ca_cert, ca_key))
    stranger, _, _ = _issue(folder, "stranger", "nobody-here", (ca_cert, ca_key))
    _, rogue_ca, rogue_key = _issue(folder, "rogue-ca", "Rogue CA", None, ca=True)
    rogue, _, _ = _issue(folder, "rogue", CERT_USER, (rogue_ca, rogue_key))
    return Pki(ca, server, client, stranger, rogue)


@pytest.fixture(scope="module")
def tls_broker(pki: Pki) -> Iterator[Broker]:
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        mqtt_tls_port=0,
        mqtt_wss_port=0,
        port=0,
        data_dir=None,
        management_port=None,
        tls_port=0,
        tls_certfile=pki.server.cert,
        tls_keyfile=pki.server.key,
        tls_cafile=pki.ca.cert,
        tls_verify_peer=True,
    )
    with Broker.in_thread(config) as broker:
        assert broker.context is not None
        users = broker.context.users
        users.add_user(CERT_USER, uuid.uuid4().hex)  # a password nobody knows
        users.set_permission("/", CERT_USER, PermissionSet())
        yield broker


def _client_context(pki: Pki, pair: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return context


def _params(broker: Broker, context: ssl.SSLContext, **kwargs: object) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        "127.0.0.1", broker.amqps_port, ssl_options=pika.SSLOptions(context, "127.0.0.1"), **kwargs
    )  # type: ignore[arg-type]


def _round_trip(connection: pika.BlockingConnection) -> None:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"over tls")
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"over tls"


def test_server_context_is_tls_1_2_or_later(pki: Pki) -> None:
    context = server_context(TLSSettings(pki.server.cert, pki.server.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    verifying = server_context(
        TLSSettings(pki.server.cert, pki.server.key, pki.ca.cert, verify_peer=True)
    )
    assert verifying.verify_mode == ssl.CERT_OPTIONAL
    strict = server_context(
        TLSSettings(pki.server.cert, pki.server.key, pki.ca.cert, fail_if_no_peer_cert=True)
    )
    assert strict.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="cafile"):
        TLSSettings(pki.server.cert, pki.server.key, verify_peer=True)


def test_plain_login_over_tls(tls_broker: Broker, pki: Pki) -> None:
    with pika.BlockingConnection(_params(tls_broker, _client_context(pki))) as connection:
        _round_trip(connection)


def test_negotiates_tls_1_2_or_later_and_refuses_older(tls_broker: Broker, pki: Pki) -> None:
    with (
        socket.create_connection(("127.0.0.1", tls_broker.amqps_port), timeout=5) as raw,
        _client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    old = _client_context(pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", tls_broker.amqps_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old.wrap_socket(raw, server_hostname="127.0.0.1")
    assert_serving(tls_broker.amqp_port)


def test_external_login_maps_the_certificate_cn_to_a_user(tls_broker: Broker, pki: Pki) -> None:
    params = _params(
        tls_broker,
        _client_context(pki, pki.client),
        credentials=pika.credentials.ExternalCredentials(),
    )
    with pika.BlockingConnection(params) as connection:
        _round_trip(connection)


def test_external_is_offered_only_with_a_verified_certificate(tls_broker: Broker, pki: Pki) -> None:
    def mechanisms(pair: Pair | None) -> str:
        raw = socket.create_connection(("127.0.0.1", tls_broker.amqps_port), timeout=5)
        tls = _client_context(pki, pair).wrap_socket(raw, server_hostname="127.0.0.1")
        with RawClient(0, sock=tls) as client:
            return str(client.start().mechanisms)

    assert "EXTERNAL" in mechanisms(pki.client)
    assert "EXTERNAL" not in mechanisms(None)


def test_external_with_a_cn_that_is_no_user_is_refused(tls_broker: Broker, pki: Pki) -> None:
    raw = socket.create_connection(("127.0.0.1", tls_broker.amqps_port), timeout=5)
    tls = _client_context(pki, pki.stranger).wrap_socket(raw, server_hostname="127.0.0.1")
    with RawClient(0, sock=tls) as client:
        client.start()
        client.send_method(
            commands.Connection.StartOk(client_properties={}, mechanism="EXTERNAL", response="")
        )
        close = client.expect_connection_close()
        assert close.reply_code == 403
        assert "EXTERNAL" in close.reply_text


def test_wrong_client_certificate_is_refused(tls_broker: Broker, pki: Pki) -> None:
    params = _params(
        tls_broker,
        _client_context(pki, pki.rogue),
        credentials=pika.credentials.ExternalCredentials(),
        connection_attempts=1,
    )
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(params)
    with pika.BlockingConnection(_params(tls_broker, _client_context(pki))) as connection:
        _round_trip(connection)  # the listener still serves others


def test_management_over_https(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pigeon")
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        mqtt_tls_port=0,
        mqtt_wss_port=0,
        port=0,
        data_dir=None,
        management_port=0,
        management_tls=True,
        tls_certfile=pki.server.cert,
        tls_keyfile=pki.server.key,
    )
    with Broker.in_thread(config) as broker:
        url = broker.management_url
        assert url is not None and url.startswith("https://127.0.0.1:")
        # The start-up log gives the address to open: https, not http.
        assert url in caplog.text and url.replace("https", "http", 1) not in caplog.text
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        request = urllib.request.Request(
            url + "api/whoami",
            headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            assert json.loads(answer.read())["name"] == "guest"
        # Plain HTTP on the TLS port gets nowhere.
        plain = url.replace("https://", "http://") + "api/whoami"
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(plain, timeout=10)
