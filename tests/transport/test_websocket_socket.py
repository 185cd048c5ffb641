"""The WebSocket listener over real sockets, with the ``websockets`` client.

A listener on 127.0.0.1 port 0 carries the echo protocol (websocket_echo.py): what
the client sends in binary messages comes back; ``bye`` makes the protocol close.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websocket_echo import EchoSession
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.listener import Listener
from pigeon.transport.tls import TLSSettings, server_context
from pigeon.transport.websocket import WebSocketSession, WebSocketSettings, listen_websocket

MQTT = [Subprotocol("mqtt")]
Echoes = Listener[WebSocketSession[EchoSession]]


class Counts:
    connections_opened = 0
    connections_closed = 0


async def _listen(ssl_context: ssl.SSLContext | None = None, **settings: object) -> Echoes:
    return await listen_websocket(
        EchoSession,
        "127.0.0.1",
        0,
        settings=WebSocketSettings(subprotocols=("mqtt",), **settings),  # type: ignore[arg-type]
        limits=ConnectionLimits(),
        counts=Counts(),
        ssl=ssl_context,
    )


@pytest.fixture
async def listener() -> AsyncIterator[Echoes]:
    listener = await _listen()
    yield listener
    await listener.close()


def url(listener: Echoes, scheme: str = "ws", path: str = "/ws") -> str:
    return f"{scheme}://127.0.0.1:{listener.port}{path}"


async def echoed(ws: ClientConnection, size: int) -> bytes:
    """Messages received until ``size`` bytes came (the server frames per write)."""
    got = bytearray()
    while len(got) < size:
        message = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(message, bytes)
        got += message
    return bytes(got)


async def until(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not callable(condition) or not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_binary_messages_are_echoed(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT, max_size=None) as ws:
        assert ws.subprotocol == "mqtt"
        await ws.send(b"\x10\x0c\x00\x04MQTT")
        assert await echoed(ws, 8) == b"\x10\x0c\x00\x04MQTT"
        big = bytes(range(256)) * 8192  # 2 MiB
        await ws.send(big)
        assert await echoed(ws, len(big)) == big


async def test_fragmented_message_and_ping(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT) as ws:
        await ws.send([b"one ", b"two ", b"three"])  # one message in three frames
        assert await echoed(ws, 13) == b"one two three"
        pong = await ws.ping(b"hello")
        await asyncio.wait_for(pong, 10)


async def test_origin_reaches_the_inner_session(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT, origin=Origin("https://app.test")) as ws:
        await ws.send(b"x")
        await echoed(ws, 1)
        (connection,) = listener.connections
        session = connection.session
        assert session is not None and session.inner is not None
        request = session.inner.peer.websocket
        assert request is not None and request.origin == "https://app.test"


@pytest.mark.parametrize(
    ("path", "subprotocols", "status"),
    [("/ws", None, 400), ("/ws", [Subprotocol("mqttv3.1")], 400), ("/other", MQTT, 404)],
)
async def test_refused_upgrades(
    listener: Echoes, path: str, subprotocols: list[Subprotocol] | None, status: int
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(listener, path=path), subprotocols=subprotocols):
            pass
    assert refused.value.response.status_code == status


async def test_client_close_is_answered_and_the_socket_closes(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT) as ws:
        await ws.send(b"x")
        await echoed(ws, 1)
        (connection,) = listener.connections
        session = connection.session
        assert session is not None and session.inner is not None
        inner = session.inner
    assert ws.close_code == 1000
    await until(lambda: inner.lost and not listener.connections)


async def test_protocol_close_reaches_the_client_as_1000(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT) as ws:
        await ws.send(b"bye")
        assert await echoed(ws, 3) == b"bye"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    await until(lambda: not listener.connections)


async def test_text_frame_is_refused_with_1003(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT) as ws:
        await ws.send("CONNECT")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_oversized_message_is_refused_with_1009() -> None:
    listener = await _listen(max_frame_size=1024)
    try:
        async with connect(url(listener), subprotocols=MQTT) as ws:
            await ws.send(b"x" * 100_000)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        await listener.close()


async def test_listener_close_sends_1001(listener: Echoes) -> None:
    async with connect(url(listener), subprotocols=MQTT) as ws:
        await ws.send(b"x")
        await echoed(ws, 1)
        await listener.close()
        assert await echoed(ws, 8) == b"shutdown"  # the protocol's goodbye, then the close
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 that it signed."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        cn: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = issue("Pigeon test CA", ca_key, None, ca_key, True)
    server = issue("127.0.0.1", server_key, ca.subject, ca_key, False)
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_websocket_over_tls(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    listener = await _listen(server_context(TLSSettings(cert, key)))
    try:
        client = ssl.create_default_context(cafile=str(ca))
        async with connect(url(listener, "wss"), subprotocols=MQTT, ssl=client) as ws:
            await ws.send(b"secure")
            assert await echoed(ws, 6) == b"secure"
            (connection,) = listener.connections
            assert connection.peer is not None and connection.peer.tls
    finally:
        await listener.close()
