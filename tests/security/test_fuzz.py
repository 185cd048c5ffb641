"""Fuzzing the codec and the connection state machine (sans-IO, no event loop).

Bounded: a fixed number of Hypothesis examples per target, no deadline per
example, the per-test timeout as the backstop. Malformed input may only
ever surface as the codec's documented errors or a ProtocolError event,
never as another exception, and hostile first packets must not make a
connection hold more than a fixed memory budget.
"""

from __future__ import annotations

import contextlib
import gc
import struct
import tracemalloc
from struct import error as StructError
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.protocols.amqp091 import connection as c
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    PROTOCOL_HEADER,
    decode_properties,
    encode_method_frame,
)
from pigeon.protocols.amqp091.frames import FrameReader
from pigeon.protocols.amqp091.replies import HardError
from pigeon.protocols.amqp091.tables import decode_table

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What one connection may hold after any hostile first packet (issue 6):
# the state machine, its pre-tune frame buffer (8 KiB) and the answer.
MEMORY_BUDGET_PER_CONNECTION = 48 * 1024


def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def _start_ok() -> bytes:
    response = b"\0guest\0guest"
    return encode_method_frame(
        0, m.ConnectionStartOk({"product": "fuzz"}, "PLAIN", response, "en_US")
    )


OPENED = (
    PROTOCOL_HEADER
    + _start_ok()
    + encode_method_frame(0, m.ConnectionTuneOk(2047, 131072, 0))
    + encode_method_frame(0, m.ConnectionOpen("/"))
    + encode_method_frame(1, m.ChannelOpen())
)

frames = st.builds(
    _frame,
    st.sampled_from([1, 2, 3, 8, 0, 4, 0xCE]),
    st.sampled_from([0, 1, 2, 2047, 2048, 65535]),
    st.one_of(
        st.binary(max_size=64),
        st.tuples(st.sampled_from(sorted(m.METHODS)), st.binary(max_size=64)).map(
            lambda p: struct.pack(">I", p[0]) + p[1]
        ),
    ),
)
streams = st.lists(st.one_of(frames, st.binary(max_size=32)), max_size=12).map(b"".join)


def drive(conn: c.ServerConnection, data: bytes, splits: list[int]) -> list[object]:
    """Feed ``data`` in pieces and answer requests as an adapter would."""
    events: list[object] = []
    start = 0
    for end in [*sorted(s % (len(data) + 1) for s in splits), len(data)]:
        if end == start:
            continue  # b"" would mean end of input
        conn.receive_data(data[start:end])
        start = end
        while (event := conn.next_event()) is not c.NEED_DATA:
            events.append(event)
            if isinstance(event, c.LoginRequested):
                conn.accept_login()
            elif isinstance(event, c.OpenRequested):
                conn.accept_open()
        conn.data_to_send()
    return events


def _server() -> c.ServerConnection:
    return c.ServerConnection(server_properties={"product": "fuzz"})


@FUZZ
@given(st.binary(max_size=2048))
def test_frame_reader_raises_only_frame_errors(data: bytes) -> None:
    reader = FrameReader(4096)
    reader.feed(data)
    try:
        for frame_type, _channel, payload in reader:
            assert frame_type in (1, 2, 3, 8)
            assert len(payload) <= 4096 - 8
    except HardError as error:
        assert error.reply_code == 501


@FUZZ
@given(st.binary(max_size=512))
def test_table_decoder_raises_only_its_documented_errors(data: bytes) -> None:
    try:
        table = decode_table(struct.pack(">I", len(data)) + data)
    except (ValueError, StructError, IndexError):
        return
    assert isinstance(table, dict)


@FUZZ
@given(st.binary(max_size=512))
def test_content_header_decoder_raises_only_hard_errors(data: bytes) -> None:
    with contextlib.suppress(HardError):
        decode_properties(struct.pack(">HHQ", 60, 0, 1) + data)


@FUZZ
@given(st.sampled_from(sorted(m.METHODS)), st.binary(max_size=256))
def test_every_method_decoder_raises_only_hard_errors(index: int, arguments: bytes) -> None:
    try:
        method = m.decode_method(struct.pack(">I", index) + arguments)
    except HardError:
        return
    assert isinstance(method, m.Method)


@FUZZ
@given(streams, st.lists(st.integers(min_value=0), max_size=4))
def test_connection_survives_any_bytes_after_the_header(data: bytes, splits: list[int]) -> None:
    conn = _server()
    events = drive(conn, PROTOCOL_HEADER + data, splits)
    _check_outcome(conn, events)


@FUZZ
@given(streams, st.lists(st.integers(min_value=0), max_size=4))
def test_open_connection_survives_any_frames(data: bytes, splits: list[int]) -> None:
    conn = _server()
    events = drive(conn, OPENED + data, splits)
    assert any(isinstance(e, c.ChannelOpened) for e in events)
    _check_outcome(conn, events)


@FUZZ
@given(st.binary(min_size=1, max_size=64))
def test_any_first_packet(data: bytes) -> None:
    conn = _server()
    events = drive(conn, data, [])
    _check_outcome(conn, events)
    if not data.startswith(PROTOCOL_HEADER[: len(data)]):
        assert conn.state in (c.ConnState.CLOSED, c.ConnState.AWAITING_HEADER)


def _check_outcome(conn: c.ServerConnection, events: list[Any]) -> None:
    errors = [e for e in events if isinstance(e, c.ProtocolError)]
    if errors:
        assert 300 <= errors[0].reply_code < 600
        assert conn.state in (c.ConnState.CLOSING, c.ConnState.CLOSED)
    conn.receive_data(b"")  # end of input never raises either
    while conn.next_event() is not c.NEED_DATA:
        pass


HOSTILE_FIRST_PACKETS = [
    PROTOCOL_HEADER + struct.pack(">BHI", 1, 0, 0xFFFF_FFFF),  # a 4 GiB frame announced
    PROTOCOL_HEADER + struct.pack(">BHI", 1, 0, 8000) + b"x" * 7000,  # pre-tune, unfinished
    PROTOCOL_HEADER + b"\x00" * 60000,  # garbage
    PROTOCOL_HEADER + _frame(1, 0, struct.pack(">HH", 10, 11) + b"\xff" * 4000),
    b"AMQP" + b"\xff" * 60000,  # wrong header with a tail
    PROTOCOL_HEADER + _start_ok()[:-1],  # start-ok missing its end octet
]


def test_hostile_first_packets_stay_within_a_memory_budget() -> None:
    connections = 200
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.take_snapshot()
        kept = []
        for i in range(connections):
            conn = _server()
            drive(conn, HOSTILE_FIRST_PACKETS[i % len(HOSTILE_FIRST_PACKETS)], [])
            kept.append(conn)
        gc.collect()
        grown = sum(
            s.size_diff for s in tracemalloc.take_snapshot().compare_to(baseline, "filename")
        )
    finally:
        tracemalloc.stop()
    per_connection = grown / connections
    assert per_connection < MEMORY_BUDGET_PER_CONNECTION, per_connection
    assert len(kept) == connections
