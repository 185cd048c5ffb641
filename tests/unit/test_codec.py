"""Field tables, content properties and frames: round trips, pamqp as the
oracle, bytes captured from a real pika client, and the frame reader."""

from __future__ import annotations

import itertools
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pamqp.commands
import pamqp.decode
import pamqp.encode
import pamqp.frame
import pamqp.header
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.core.message import Long
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_METHOD,
    HEARTBEAT_FRAME,
    decode_encoded_properties,
    decode_properties,
    encode_content_frames,
    encode_content_header,
    encode_deliver,
    encode_frame,
    encode_method_frame,
    encode_properties,
)
from pigeon.protocols.amqp091.codec import BasicProperties as Properties
from pigeon.protocols.amqp091.frames import FrameReader
from pigeon.protocols.amqp091.replies import HardError, ReplyCode
from pigeon.protocols.amqp091.tables import decode_table, encode_table

KEY = st.text(max_size=20)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**5), max_value=10**5
    )
    | st.text(max_size=30)
    | st.binary(max_size=30).filter(lambda b: not _utf8(b))
    | st.datetimes(datetime(1970, 1, 1), datetime(9999, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=0)
    )
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=4),
    max_leaves=20,
)
TABLE = st.dictionaries(KEY, VALUE, max_size=6)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


# ------------------------------------------------------------------ field tables


@given(TABLE)
def test_table_round_trip(table: dict[str, Any]) -> None:
    assert decode_table(encode_table(table)) == table


# What pamqp encodes and decodes identically: no bytes (it wants bytearray),
# no floats (it writes 32-bit 'f'), no timestamps.
PAMQP_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(KEY, PAMQP_VALUE, max_size=6))
def test_tables_against_pamqp(table: dict[str, Any]) -> None:
    assert pamqp.decode.field_table(encode_table(table))[1] == table
    assert decode_table(pamqp.encode.field_table(table)) == table


def tagged(tag: bytes, raw: bytes) -> bytes:
    body = b"\x01k" + tag + raw
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize(
    ("tag", "raw", "value"),
    [
        (b"t", b"\x01", True),
        (b"b", b"\xff", -1),
        (b"B", b"\xff", 255),
        (b"s", b"\xff\xfe", -2),  # RabbitMQ's signed 16-bit, not the spec's
        (b"U", b"\xff\xfe", -2),
        (b"u", b"\xff\xfe", 65534),
        (b"I", b"\xff\xff\xff\xfe", -2),
        (b"i", b"\xff\xff\xff\xfe", 2**32 - 2),
        (b"l", b"\xff" * 7 + b"\xfe", -2),  # RabbitMQ's signed 64-bit
        (b"L", b"\xff" * 7 + b"\xfe", -2),
        (b"f", struct.pack(">f", 1.5), 1.5),
        (b"d", struct.pack(">d", -0.25), -0.25),
        (b"D", b"\x02" + struct.pack(">i", -12345), Decimal("-123.45")),
        (b"S", b"\x00\x00\x00\x02\xc3\xa9", "é"),
        (b"S", b"\x00\x00\x00\x01\xff", b"\xff"),  # not UTF-8: bytes
        (b"x", b"\x00\x00\x00\x02\x00\x01", b"\x00\x01"),
        (b"T", struct.pack(">Q", 1_700_000_000), datetime.fromtimestamp(1_700_000_000, UTC)),
        (b"V", b"", None),
        (b"A", b"\x00\x00\x00\x04Ib\x01", [True]),
        (b"F", b"\x00\x00\x00\x00", {}),
    ],
)
def test_every_rabbitmq_tag_decodes(tag: bytes, raw: bytes, value: Any) -> None:
    if tag == b"A":
        raw = b"\x00\x00\x00\x02tb"  # an array of one boolean
        value = [True]
    decoded = decode_table(tagged(tag, raw))
    assert decoded == {"k": value}
    assert type(decoded["k"]) is type(value)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, b"t\x01"),
        (7, b"I\x00\x00\x00\x07"),
        (2**31, b"l" + struct.pack(">q", 2**31)),
        (Long(3), b"l" + struct.pack(">q", 3)),  # as RabbitMQ types x-delivery-count
        (-(2**31) - 1, b"l" + struct.pack(">q", -(2**31) - 1)),
        ("é", b"S\x00\x00\x00\x02\xc3\xa9"),
        (b"\x00", b"x\x00\x00\x00\x01\x00"),
        (None, b"V"),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), b"T" + struct.pack(">Q", 1_700_000_000)),
        (datetime(2023, 11, 14, 22, 13, 20), b"T" + struct.pack(">Q", 1_700_000_000)),
        (0.5, b"d" + struct.pack(">d", 0.5)),
        (Decimal("1.50"), b"D\x02\x00\x00\x00\x96"),
        ([], b"A\x00\x00\x00\x00"),
        ({}, b"F\x00\x00\x00\x00"),
    ],
)
def test_python_values_get_rabbitmq_tags(value: Any, wire: bytes) -> None:
    assert encode_table({"k": value}) == tagged(b"", wire)


def test_unencodable_values() -> None:
    with pytest.raises(ValueError):
        encode_table({"k": 2**63})
    with pytest.raises(TypeError):
        encode_table({"k": object()})
    with pytest.raises(ValueError):
        encode_table({"k" * 256: 1})


@pytest.mark.parametrize(
    "raw",
    [
        tagged(b"Z", b""),  # unknown tag
        tagged(b"S", b"\x00\x00\x00\x09ab"),  # string past the end
        tagged(b"I", b"\x00"),  # truncated integer
        struct.pack(">I", 99) + b"\x01kV",  # table length past the end
        tagged(b"A", b"\x00\x00\x00\x01Z"),
        b"F" * 3,
    ],
)
def test_malformed_tables_raise_value_errors(raw: bytes) -> None:
    with pytest.raises((ValueError, struct.error, IndexError)):
        decode_table(raw)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    table: dict[str, Any] = {}
    for _ in range(300):
        table = {"k": table}
    with pytest.raises(ValueError):
        decode_table(encode_table(table))


# ------------------------------------------------------------------ properties

# basic.publish + content header + body as pika 1.3 sends them, captured from
# the socket: properties content_type, delivery_mode 2, headers {"n": 7,
# "s": "x"}, message_id "m-1", timestamp 1700000000; body b"hello pigeon".
PIKA_PUBLISH = bytes.fromhex(
    "01000100000022003c002800000019706967656f6e2d676f6c64656e2d6e6f6e6578697374656e7400ce"
    "0200010000003f003c0000000000000000000cb0c0106170706c69636174696f6e2f6a736f6e0000000f"
    "016e4900000007017353000000017802036d2d31000000006553f100ce"
    "0300010000000c68656c6c6f20706967656f6ece"
)
PIKA_PROPERTIES = Properties(
    content_type="application/json",
    headers={"n": 7, "s": "x"},
    delivery_mode=2,
    message_id="m-1",
    timestamp=1_700_000_000,
)


def test_golden_pika_publish() -> None:
    reader = FrameReader(131072)
    reader.feed(PIKA_PUBLISH)
    (t1, c1, method), (t2, c2, header), (t3, c3, body) = [(t, c, bytes(p)) for t, c, p in reader]
    assert (t1, t2, t3, c1, c2, c3) == (FRAME_METHOD, FRAME_HEADER, FRAME_BODY, 1, 1, 1)
    assert m.decode_method(method) == m.BasicPublish(
        exchange="", routing_key="pigeon-golden-nonexistent"
    )
    assert decode_properties(header) == (12, PIKA_PROPERTIES)
    assert body == b"hello pigeon"
    # Our encoding is byte-for-byte pika's, frames and all.
    props = encode_properties(PIKA_PROPERTIES)
    assert encode_content_header(60, 12, props) == header
    frames = encode_content_frames(1, m.decode_method(method).encode(), props, body, 131072)
    assert b"".join(frames) == PIKA_PUBLISH


SHORT = st.text(max_size=40)
PROPERTIES = st.builds(
    Properties,
    content_type=st.none() | SHORT,
    content_encoding=st.none() | SHORT,
    headers=st.none() | TABLE,
    delivery_mode=st.none() | st.integers(0, 255),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none()
    | st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
    reply_to=st.none() | SHORT,
    expiration=st.none() | SHORT,
    message_id=st.none() | SHORT,
    timestamp=st.none() | st.integers(0, 2**64 - 1),
    type=st.none() | SHORT,
    user_id=st.none() | SHORT,
    app_id=st.none() | SHORT,
    cluster_id=st.none() | SHORT,
)


@given(PROPERTIES, st.integers(0, 2**64 - 1))
def test_properties_round_trip(props: Properties, size: int) -> None:
    assert decode_properties(encode_content_header(60, size, encode_properties(props))) == (
        size,
        props,
    )


@given(PROPERTIES)
def test_encoded_properties_round_trip(props: Properties) -> None:
    assert decode_encoded_properties(encode_properties(props)) == props


@pytest.mark.parametrize("encoded", [b"", b"\x00", b"\x00\x01", b"\x00\x00\x00", b"\x80\x00\x09a"])
def test_bad_encoded_properties_are_501(encoded: bytes) -> None:
    with pytest.raises(HardError) as caught:
        decode_encoded_properties(encoded)
    assert caught.value.reply_code == ReplyCode.FRAME_ERROR


PAMQP_NAMES = {"type": "message_type"}


# pamqp leaves out falsy properties ('' or 0), so the oracle test never sets them.
TEXT1 = st.text(min_size=1, max_size=40)
PAMQP_PROPERTIES = st.builds(
    Properties,
    content_type=st.none() | TEXT1,
    headers=st.none() | st.dictionaries(KEY, PAMQP_VALUE, min_size=1, max_size=3),
    delivery_mode=st.none() | st.integers(1, 2),
    priority=st.none() | st.integers(1, 9),
    correlation_id=st.none() | TEXT1,
    reply_to=st.none() | TEXT1,
    type=st.none() | TEXT1,
    app_id=st.none() | TEXT1,
)


@given(PAMQP_PROPERTIES, st.integers(0, 2**63 - 1))
def test_properties_against_pamqp(props: Properties, size: int) -> None:
    fields = {PAMQP_NAMES.get(k, k): getattr(props, k) for k in Properties.__slots__}
    theirs = pamqp.commands.Basic.Properties(**{k: v for k, v in fields.items() if v is not None})
    header = pamqp.header.ContentHeader(0, size, theirs).marshal()
    assert decode_properties(header) == (size, props)
    ours = encode_content_header(60, size, encode_properties(props))
    _, _, back = pamqp.frame.unmarshal(encode_frame(FRAME_HEADER, 1, ours))
    assert back.body_size == size
    for name in Properties.__slots__:  # pamqp gives defaults ('') for absent ones
        if getattr(props, name) is not None:
            assert getattr(back.properties, PAMQP_NAMES.get(name, name)) == getattr(props, name)


@pytest.mark.parametrize(
    "props",
    [
        b"\x00\x01\x00\x00",  # continuation into a second flag word
        b"\x00\x02",  # bit 1: no such property
        b"\x80\x00",  # content-type flagged, not there
        b"\x80\x00\x05ab",  # short string past the end
        b"\x00\x00\x00",  # a byte after the (empty) property list
        b"\x00",  # flags cut short
    ],
)
def test_bad_property_lists_are_501(props: bytes) -> None:
    with pytest.raises(HardError) as caught:
        decode_properties(encode_content_header(60, 0, props))
    assert caught.value.reply_code == ReplyCode.FRAME_ERROR


# ------------------------------------------------------------------ frames


def test_encode_frame_and_heartbeat() -> None:
    assert encode_frame(3, 5, b"ab") == b"\x03\x00\x05\x00\x00\x00\x02ab\xce"
    assert encode_frame(8, 0, b"") == HEARTBEAT_FRAME
    assert encode_method_frame(0, m.ConnectionCloseOk()) == encode_frame(1, 0, b"\x00\x0a\x00\x33")


def read_all(data: bytes, frame_max: int = 0) -> list[tuple[int, int, bytes]]:
    reader = FrameReader(frame_max)
    reader.feed(data)
    return [(t, c, bytes(p)) for t, c, p in reader]


@pytest.mark.parametrize(
    ("size", "frame_max", "bodies"),
    [
        (0, 4096, []),
        (10, 4096, [10]),
        (4088, 4096, [4088]),
        (4089, 4096, [4088, 1]),
        (10000, 4096, [4088, 4088, 1824]),
        (10000, 0, [10000]),
    ],
)
def test_content_frames_split_at_frame_max(size: int, frame_max: int, bodies: list[int]) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    method = m.BasicGetOk(delivery_tag=1, exchange="x", routing_key="k", message_count=0)
    frames = read_all(
        b"".join(encode_content_frames(2, method.encode(), b"\x00\x00", body, frame_max))
    )
    assert [t for t, _, _ in frames] == [FRAME_METHOD, FRAME_HEADER] + [FRAME_BODY] * len(bodies)
    assert [len(p) for t, _, p in frames if t == FRAME_BODY] == bodies
    assert b"".join(p for t, _, p in frames if t == FRAME_BODY) == body
    assert decode_properties(frames[1][2]) == (size, Properties())


@given(
    channel=st.integers(1, 65535),
    tag=st.text(max_size=50),
    delivery_tag=st.integers(0, 2**63 - 1),
    redelivered=st.booleans(),
    exchange=st.text(max_size=50),
    key=st.text(max_size=50),
    props=PROPERTIES,
    body=st.binary(max_size=10000),
    frame_max=st.sampled_from([0, 4096, 131072]),
)
def test_encode_deliver_matches_the_generic_path(
    channel: int,
    tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    key: str,
    props: Properties,
    body: bytes,
    frame_max: int,
) -> None:
    encoded = encode_properties(props)
    method = m.BasicDeliver(tag, delivery_tag, redelivered, exchange, key)
    fast = b"".join(
        encode_deliver(
            channel, tag, delivery_tag, redelivered, exchange, key, encoded, body, frame_max
        )
    )
    assert fast == b"".join(
        encode_content_frames(channel, method.encode(), encoded, body, frame_max)
    )
    _, _, theirs = pamqp.frame.unmarshal(fast)
    assert (theirs.consumer_tag, theirs.delivery_tag, theirs.redelivered) == (
        tag,
        delivery_tag,
        redelivered,
    )


def test_encode_deliver_refuses_long_short_strings() -> None:
    with pytest.raises(ValueError):
        encode_deliver(1, "t" * 256, 1, False, "", "", b"\x00\x00", b"", 0)


# ------------------------------------------------------------------ frame reader

FRAMES = st.lists(
    st.tuples(st.sampled_from([1, 2, 3]), st.integers(0, 65535), st.binary(max_size=300))
    | st.just((8, 0, b"")),
    max_size=12,
)


@given(FRAMES, st.lists(st.integers(0, 5000), max_size=20))
def test_every_split_parses_the_same(frames: list[tuple[int, int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(*frame) for frame in frames)
    reader = FrameReader(4096)
    got: list[tuple[int, int, bytes]] = []
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        reader.feed(stream[start:end])
        got.extend((t, c, bytes(p)) for t, c, p in reader)
    assert got == frames


def test_incomplete_input_just_stops() -> None:
    frame = encode_frame(1, 1, b"abcdef")
    reader = FrameReader()
    for byte in frame[:-1]:
        reader.feed(bytes([byte]))
        assert list(reader) == []
    reader.feed(frame[-1:])
    [(_, _, payload)] = list(reader)
    assert isinstance(payload, memoryview) and payload == b"abcdef"


def reader_error(data: bytes, frame_max: int = 4096) -> HardError:
    reader = FrameReader(frame_max)
    reader.feed(data)
    with pytest.raises(HardError) as caught:
        list(reader)
    assert caught.value.reply_code == ReplyCode.FRAME_ERROR
    return caught.value


def test_bad_frame_end_is_501() -> None:
    reader_error(encode_frame(1, 1, b"abc")[:-1] + b"\x00")


def test_oversize_frame_is_501_from_the_header_alone() -> None:
    # 4089 bytes of payload + 8 of overhead exceed 4096: only the 7-byte header was fed.
    error = reader_error(struct.pack(">BHI", 1, 1, 4089))
    assert "4089" in error.text
    assert read_all(encode_frame(3, 1, bytes(4088)), 4096)[0][2] == bytes(4088)


def test_unknown_frame_type_and_heartbeat_payload_are_501() -> None:
    reader_error(encode_frame(5, 1, b"abc"))
    reader_error(encode_frame(8, 0, b"ab"))


def test_frame_max_can_be_raised_after_tune() -> None:
    reader = FrameReader(4096)
    reader.frame_max = 131072
    reader.feed(encode_frame(3, 1, bytes(100_000)))
    assert [len(p) for _, _, p in reader] == [100_000]


def test_frame_max_reads_back() -> None:
    reader = FrameReader(4096)
    assert reader.frame_max == 4096
    reader.frame_max = 0
    assert reader.frame_max == 0
    reader.feed(encode_frame(3, 1, bytes(200_000)))
    assert [len(p) for _, _, p in reader] == [200_000]


def test_a_bytearray_fed_is_read_like_bytes() -> None:
    reader = FrameReader(4096)
    reader.feed(bytearray(encode_frame(1, 1, b"abc")))
    assert [(t, c, bytes(p)) for t, c, p in reader] == [(1, 1, b"abc")]


# ------------------------------------------------------------------ publish look-ahead

PUBLISH_ARGS = m.BasicPublish(exchange="ex", routing_key="rk").encode()
PROPS = encode_properties(Properties(delivery_mode=2))


def message(channel: int, body: bytes, frame_max: int = 4096) -> bytes:
    return b"".join(encode_content_frames(channel, PUBLISH_ARGS, PROPS, body, frame_max))


def test_peek_publish_sees_a_whole_message_and_consumes_nothing() -> None:
    data = message(7, b"hello") + message(7, b"")
    reader = FrameReader(4096)
    reader.feed(data)
    first = reader.peek_publish()
    assert first is not None
    channel, args, props, body, end = first
    assert (channel, args, props, body) == (7, PUBLISH_ARGS[4:], PROPS, b"hello")
    assert all(type(v) is bytes for v in (args, props, body))
    assert reader.peek_publish() == first
    reader.skip_to(end)
    assert reader.peek_publish() == (7, PUBLISH_ARGS[4:], PROPS, b"", len(data))
    reader.skip_to(len(data))
    assert reader.peek_publish() is None
    assert list(reader) == []


@given(st.integers(0, 200))
def test_peek_publish_needs_every_byte(cut: int) -> None:
    data = message(1, b"x" * 50)
    reader = FrameReader(4096)
    reader.feed(data[: cut % len(data)])
    assert reader.peek_publish() is None
    reader.feed(data[cut % len(data) :])
    assert reader.peek_publish() is not None


@pytest.mark.parametrize(
    "data",
    [
        message(1, bytes(5000)),  # two body frames
        encode_method_frame(1, m.BasicAck(1)),
        encode_frame(FRAME_METHOD, 1, PUBLISH_ARGS) + HEARTBEAT_FRAME,
        HEARTBEAT_FRAME + message(1, b"x"),
    ],
)
def test_peek_publish_leaves_the_rest_to_next_frame(data: bytes) -> None:
    reader = FrameReader(4096)
    reader.feed(data)
    assert reader.peek_publish() is None
    assert reader.next_frame() is not None


# ------------------------------------------------------------------ deliver templates


def test_deliveries_to_many_consumers_on_many_channels() -> None:
    # More (channel, tag, exchange, key) combinations than the encoder keeps.
    for i in range(1300):
        channel, tag, key = i % 7 + 1, f"ctag-{i % 600}", f"rk.{i}"
        fast = encode_deliver(channel, tag, i, i % 2 == 1, "ex", key, PROPS, b"b" * (i % 3), 4096)
        method = m.BasicDeliver(tag, i, i % 2 == 1, "ex", key).encode()
        assert b"".join(fast) == b"".join(
            encode_content_frames(channel, method, PROPS, b"b" * (i % 3), 4096)
        )
