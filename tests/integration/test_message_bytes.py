"""AMQP to AMQP, a message's properties reach the consumer in the bytes they were sent in.

The broker converts properties to its neutral message, but delivers a message that
arrived through AMQP with the content-header bytes it came with (issue 12: no
re-encoding on the hot path, and no type a client chose is lost: pamqp encodes
small integers as ``b``/``s``/``u``, which a re-encoding would widen). Raw frames
are taken from the clients' own frame decoders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiormq
import pamqp.frame
import pika
import pika.frame
import pytest
from pamqp import commands
from pamqp.header import ContentHeader

HEADERS = {"small": 5, "short": -300, "ushort": 40_000, "int": 70_000, "long": 2**40,
           "decimal": Decimal("3.14"), "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
           "bytes": b"\x00\xff", "void": None, "flag": True,
           "nested": {"list": [1, "two", {"deep": b"x"}]}}  # fmt: skip
# pamqp encodes bytearray (not bytes) as a byte array.
PAMQP_HEADERS = {**HEADERS, "bytes": bytearray(b"\x00\xff"),
                 "nested": {"list": [1, "two", {"deep": bytearray(b"x")}]}}  # fmt: skip
CONTENT_HEADER = 2


def header_properties(frame: bytes) -> bytes | None:
    """The property flags and list of a raw content-header frame, else None."""
    if frame[0] != CONTENT_HEADER:
        return None
    return frame[7 + 12 : -1]  # frame head (7), class/weight/size (12), frame end


@pytest.fixture
def raw_headers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every content-header frame pika or aiormq decodes, as received."""
    seen: list[bytes] = []
    pika_decode, pamqp_unmarshal = pika.frame.decode_frame, pamqp.frame.unmarshal

    def pika_tap(data: bytes) -> Any:
        used, frame = pika_decode(data)
        if used and (props := header_properties(bytes(data[:used]))) is not None:
            seen.append(props)
        return used, frame

    def pamqp_tap(data: bytes) -> Any:
        if (props := header_properties(bytes(data))) is not None:
            seen.append(props)
        return pamqp_unmarshal(data)

    monkeypatch.setattr(pika.frame, "decode_frame", pika_tap)
    monkeypatch.setattr(pamqp.frame, "unmarshal", pamqp_tap)
    yield seen


async def aiormq_round(url: str, queue: str, publish_with_pamqp: bool) -> None:
    """Publish one message with aiormq (pamqp's encoding) if asked, then get one."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        if publish_with_pamqp:
            props = commands.Basic.Properties(
                headers=PAMQP_HEADERS, correlation_id="c", priority=3, message_id="m-1"
            )
            await channel.basic_publish(b"x", routing_key=queue, properties=props)
        got = await channel.basic_get(queue, no_ack=True)
        assert got.body == b"x"
    finally:
        await connection.close()


def sent_by_pamqp() -> bytes:
    props = commands.Basic.Properties(
        headers=PAMQP_HEADERS, correlation_id="c", priority=3, message_id="m-1"
    )
    return ContentHeader(0, 1, props).marshal()[12:]


def test_properties_published_by_pika_reach_pika_and_aiormq_byte_exact(
    amqp_url: str, connection: pika.BlockingConnection, uid: str, raw_headers: list[bytes]
) -> None:
    queue = f"bytes-pika-{uid}"
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=True)
    props = pika.BasicProperties(headers=HEADERS, correlation_id="c", delivery_mode=1)
    sent = b"".join(props.encode())
    for _ in range(2):
        channel.basic_publish("", queue, b"x", props)
    method, _, _ = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    asyncio.run(aiormq_round(amqp_url, queue, publish_with_pamqp=False))
    assert raw_headers == [sent, sent]


def test_properties_published_by_aiormq_reach_pika_and_aiormq_byte_exact(
    amqp_url: str, connection: pika.BlockingConnection, uid: str, raw_headers: list[bytes]
) -> None:
    queue = f"bytes-pamqp-{uid}"
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=True)
    asyncio.run(aiormq_round(amqp_url, queue, publish_with_pamqp=True))
    asyncio.run(aiormq_publish(amqp_url, queue))
    method, _, _ = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    sent = sent_by_pamqp()
    assert b"b\x05" in sent  # pamqp's one-byte integer: widened by any re-encoding
    assert raw_headers == [sent, sent]


async def aiormq_publish(url: str, queue: str) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        props = commands.Basic.Properties(
            headers=PAMQP_HEADERS, correlation_id="c", priority=3, message_id="m-1"
        )
        await channel.basic_publish(b"x", routing_key=queue, properties=props)
    finally:
        await connection.close()
