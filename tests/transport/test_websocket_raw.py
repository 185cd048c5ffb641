"""The WebSocket listener against a raw socket: what a broken or silent client gets.

The listener carries the echo protocol (websocket_echo.py) on 127.0.0.1 port 0,
with short timers, so that each timer's effect is seen within the test.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
from websocket_echo import EchoSession, client_frame, server_frames

from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.glue import Tuning
from pigeon.transport.listener import Listener
from pigeon.transport.websocket import WebSocketSession, WebSocketSettings, listen_websocket

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Protocol: mqtt\r\n\r\n"
)


class Counts:
    connections_opened = 0
    connections_closed = 0


@pytest.fixture
async def listener() -> AsyncIterator[Listener[WebSocketSession[EchoSession]]]:
    listener = await listen_websocket(
        EchoSession,
        "127.0.0.1",
        0,
        settings=WebSocketSettings(subprotocols=("mqtt",)),
        limits=ConnectionLimits(),
        counts=Counts(),
        tuning=Tuning(handshake_timeout=0.5, close_timeout=0.3, linger_timeout=0.3),
    )
    yield listener
    await listener.close()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (within 5 s, or the test fails)."""
    return await asyncio.wait_for(reader.read(), 5)


async def opened(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer


def close_code(frames: list[tuple[int, bytes]]) -> int:
    opcode, payload = frames[-1]
    assert opcode == 0x8
    return int(struct.unpack_from("!H", payload)[0])


async def test_unmasked_frame_gets_1002_then_the_socket_closes(
    listener: Listener[WebSocketSession[EchoSession]],
) -> None:
    reader, writer = await opened(listener.port)
    writer.write(client_frame(0x2, b"plain", mask=None))
    # We never answer the close: the server closes after its close timeout.
    assert close_code(server_frames(await read_all(reader))) == 1002
    writer.close()


async def test_protocol_close_is_not_held_open_by_a_silent_client(
    listener: Listener[WebSocketSession[EchoSession]],
) -> None:
    reader, writer = await opened(listener.port)
    writer.write(client_frame(0x2, b"bye"))
    frames = server_frames(await read_all(reader))
    assert frames[0] == (0x2, b"bye")
    assert close_code(frames) == 1000
    writer.close()


async def test_client_that_never_upgrades_is_dropped(
    listener: Listener[WebSocketSession[EchoSession]],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(UPGRADE[:40])  # and nothing more
    assert await read_all(reader) == b""  # the handshake timeout ends it
    writer.close()


async def test_refused_upgrade_is_answered_before_the_close(
    listener: Listener[WebSocketSession[EchoSession]],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(UPGRADE.replace(b"GET /ws", b"GET /nowhere"))
    answer = await read_all(reader)
    assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n")
    writer.close()
