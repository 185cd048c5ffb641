"""ServerConnection fed whole client sessions cut anywhere: the same events.

A session is generated the way a client could send it: the handshake, then
several channels whose frames interleave (amqp0-9-1 §4.2.6 orders frames
within a channel, not across channels), publishes whose bodies are cut into
frames of any size up to frame_max, acks, heartbeats, channel closes, and a
connection.close. Fed in one piece or in arbitrary chunks, the connection must
give the same events and the same output, and each channel's events must be
what its client sent, in order. Frames are built with pamqp, an independent
codec.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as C
from test_server_connection import START_OK, body, header, method, tune_ok

from pigeon.protocols.amqp091.codec import FRAME_MIN_SIZE, HEARTBEAT_FRAME, PROTOCOL_HEADER
from pigeon.protocols.amqp091.connection import (
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    ContentReceived,
    Event,
    LoginRequested,
    MethodReceived,
    OpenRequested,
    ServerConnection,
)

FRAME_MAX = FRAME_MIN_SIZE  # 4096: long bodies take several frames
BODY_MAX = FRAME_MAX - 8  # frame header (7 bytes) and frame end (1 byte)
HANDSHAKE = (
    PROTOCOL_HEADER + START_OK + tune_ok(frame_max=FRAME_MAX) + method(0, C.Connection.Open("/"))
)
CLOSE = method(0, C.Connection.Close(200, "bye", 0, 0))

# What a channel's events must say, one tuple per event (see summary()).
Expected = tuple[Any, ...]


@st.composite
def body_frames(draw: st.DrawFn, channel: int, payload: bytes) -> list[bytes]:
    """``payload`` as body frames of any sizes from 1 byte to the frame limit."""
    frames, start = [], 0
    while start < len(payload):
        size = draw(st.integers(1, min(BODY_MAX, len(payload) - start)))
        frames.append(body(channel, payload[start : start + size]))
        start += size
    return frames


@st.composite
def publish(draw: st.DrawFn, channel: int) -> tuple[list[bytes], Expected]:
    key = draw(st.sampled_from(["k", "", "é", "a.b.c"]))
    payload = draw(st.binary(max_size=30) | st.binary(min_size=BODY_MAX - 2, max_size=9000))
    props = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "message_id": st.text(min_size=1, max_size=8),
                "content_type": st.just("text/plain"),
                "headers": st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=2),
            },
        )
    )
    frames = [
        method(channel, C.Basic.Publish(exchange="x", routing_key=key)),
        header(channel, len(payload), **props),
        *draw(body_frames(channel, payload)),
    ]
    return frames, ("content", channel, key, payload, props.get("message_id"))


@st.composite
def channel_script(draw: st.DrawFn, channel: int) -> tuple[list[bytes], list[Expected]]:
    """One channel's frames, in order, and the events they must give."""
    frames = [method(channel, C.Channel.Open())]
    expected: list[Expected] = [("opened", channel)]
    for tag in range(1, draw(st.integers(0, 4)) + 1):
        if draw(st.booleans()):
            content, event = draw(publish(channel))
            frames += content
            expected.append(event)
        else:
            frames.append(method(channel, C.Basic.Ack(tag)))
            expected.append(("ack", channel, tag))
    if draw(st.booleans()):
        frames.append(method(channel, C.Channel.Close(200, "done", 0, 0)))
        expected.append(("closed", channel, 200, "done"))
    return frames, expected


@st.composite
def sessions(draw: st.DrawFn) -> tuple[bytes, dict[int, list[Expected]]]:
    """A whole session's bytes, and what each channel's events must be."""
    numbers = draw(st.lists(st.sampled_from([1, 2, 7, 65535]), min_size=1, max_size=3, unique=True))
    scripts = {n: draw(channel_script(n)) for n in numbers}
    # Which channel sends next (0: a heartbeat); each channel's frames stay in order.
    turns = [n for n, (frames, _) in scripts.items() for _ in frames]
    turns += [0] * draw(st.integers(0, 3))
    pending = {n: iter(frames) for n, (frames, _) in scripts.items()}
    middle = [HEARTBEAT_FRAME if n == 0 else next(pending[n]) for n in draw(st.permutations(turns))]
    expected = {n: events for n, (_, events) in scripts.items()}
    return HANDSHAKE + b"".join(middle) + CLOSE, expected


def summary(event: Event) -> Expected:
    """The parts of an event a test can predict from what the client sent."""
    if isinstance(event, ChannelOpened):
        return ("opened", event.channel)
    if isinstance(event, ContentReceived):
        key = getattr(event.method, "routing_key", None)
        return ("content", event.channel, key, event.body, event.properties.message_id)
    if isinstance(event, MethodReceived):
        return ("ack", event.channel, getattr(event.method, "delivery_tag", None))
    if isinstance(event, ChannelClosed):
        assert event.by_peer
        return ("closed", event.channel, event.reply_code, event.reply_text)
    return (type(event).__name__,)


def run(chunks: list[bytes]) -> tuple[list[Event], bytes]:
    """Feed chunks, answering like an adapter that accepts everything."""
    conn = ServerConnection({"product": "Pigeon"})
    events: list[Event] = []
    output = []
    for chunk in chunks:
        conn.receive_data(chunk)
        for event in conn.next_events():
            events.append(event)
            if isinstance(event, LoginRequested):
                conn.accept_login()
            elif isinstance(event, OpenRequested):
                conn.accept_open()
        output.append(conn.data_to_send())
    return events, b"".join(output)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(sessions(), st.lists(st.integers(min_value=0), max_size=40), st.integers(1, 600))
def test_any_split_of_a_session_gives_the_same_events(
    session: tuple[bytes, dict[int, list[Expected]]], points: list[int], step: int
) -> None:
    data, expected = session
    whole = run([data])
    assert run(cut(data, points)) == whole
    assert run([data[i : i + step] for i in range(0, len(data), step)]) == whole

    events = [summary(event) for event in whole[0]]
    assert events[:2] == [("LoginRequested",), ("OpenRequested",)]
    assert whole[0][-1] == ConnectionClosed(200, "bye", by_peer=True)
    for channel, wanted in expected.items():
        assert [e for e in events[2:-1] if len(e) > 1 and e[1] == channel] == wanted
    assert len(events) == 3 + sum(len(wanted) for wanted in expected.values())
