"""ServerConnection fed raw bytes, no sockets. Client frames are built and the
server's output parsed with pamqp, an independent codec. The expected codes
are what RabbitMQ 3.10 answers to the same bytes (probed on the wire).

(Named test_server_connection.py: tests/integration/test_connection.py exists
and pytest's default import mode cannot hold two test_connection modules.)
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pamqp.body
import pamqp.frame
import pamqp.header
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as C

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    encode_frame,
)
from pigeon.protocols.amqp091.codec import BasicProperties as Properties
from pigeon.protocols.amqp091.connection import (
    NEED_DATA,
    BadProtocolHeader,
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    ConnectionLost,
    ConnState,
    ContentReceived,
    Event,
    LoginRequested,
    MethodReceived,
    OpenRequested,
    ProtocolError,
    SecureOkReceived,
    ServerConnection,
    UpdateSecretRequested,
)
from pigeon.protocols.amqp091.replies import ReplyCode
from pigeon.protocols.amqp091.tables import encode_table

SERVER_PROPERTIES = {"product": "Pigeon", "capabilities": {"publisher_confirms": True}}


def method(channel: int, frame: Any) -> bytes:
    return pamqp.frame.marshal(frame, channel)


def header(channel: int, size: int, class_id: int = 60, **props: Any) -> bytes:
    content = pamqp.header.ContentHeader(0, size, C.Basic.Properties(**props))
    payload = bytearray(content.marshal())
    payload[0:2] = struct.pack(">H", class_id)
    return encode_frame(2, channel, bytes(payload))


def body(channel: int, data: bytes) -> bytes:
    return pamqp.frame.marshal(pamqp.body.ContentBody(data), channel)


START_OK = method(0, C.Connection.StartOk(mechanism="PLAIN", response="\0guest\0guest"))
PUBLISH = method(1, C.Basic.Publish(exchange="amq.direct", routing_key="k"))
CLOSE_OK = method(0, C.Connection.CloseOk())


def tune_ok(channel_max: int = 0, frame_max: int = 0, heartbeat: int = 60) -> bytes:
    return method(0, C.Connection.TuneOk(channel_max, frame_max, heartbeat))


def feed(conn: ServerConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return list(conn.next_events())


def sent(conn: ServerConnection) -> list[tuple[int, Any]]:
    """The server's output as (channel, pamqp frame) pairs."""
    data, frames = conn.data_to_send(), []
    while data:
        consumed, channel, frame = pamqp.frame.unmarshal(data)
        frames.append((channel, frame))
        data = data[consumed:]
    return frames


def connected(**limits: Any) -> ServerConnection:
    """A connection past connection.open-ok, its output consumed."""
    conn = ServerConnection(SERVER_PROPERTIES, **limits)
    feed(conn, PROTOCOL_HEADER + START_OK)
    conn.accept_login()
    feed(conn, tune_ok(frame_max=limits.get("frame_max", 131072)))
    feed(conn, method(0, C.Connection.Open("/")))
    conn.accept_open()
    conn.data_to_send()
    return conn


def with_channel(**limits: Any) -> ServerConnection:
    conn = connected(**limits)
    assert feed(conn, method(1, C.Channel.Open())) == [ChannelOpened(1)]
    conn.data_to_send()
    return conn


def closed_with(conn: ServerConnection, events: list[Event]) -> tuple[int, int, int]:
    """Assert the connection failed: one ProtocolError and a connection.close."""
    [(channel, close)] = sent(conn)
    assert channel == 0 and close.name == "Connection.Close"
    assert events == [ProtocolError(close.reply_code, close.reply_text)]
    assert conn.state is ConnState.CLOSING
    return close.reply_code, close.class_id, close.method_id


# ------------------------------------------------------------------ handshake


def test_full_handshake_with_plain() -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    assert conn.state is ConnState.AWAITING_HEADER
    assert feed(conn, PROTOCOL_HEADER) == []
    [(_, start)] = sent(conn)
    assert (start.version_major, start.version_minor) == (0, 9)
    assert start.server_properties == SERVER_PROPERTIES
    assert (start.mechanisms, start.locales) == ("PLAIN AMQPLAIN", "en_US")

    client_properties = {"product": "pika", "capabilities": {"authentication_failure_close": True}}
    start_ok = C.Connection.StartOk(client_properties, "PLAIN", "\0guest\0guest", "en_US")
    assert feed(conn, method(0, start_ok)) == [
        LoginRequested("PLAIN", b"\0guest\0guest", client_properties, "en_US")
    ]
    assert conn.state is ConnState.SECURING
    conn.accept_login()
    [(_, tune)] = sent(conn)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)

    assert feed(conn, tune_ok(channel_max=0, frame_max=0, heartbeat=15)) == []
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (2047, 131072, 15)
    assert feed(conn, method(0, C.Connection.Open("/vhost"))) == [OpenRequested("/vhost")]
    conn.accept_open()
    assert [f.name for _, f in sent(conn)] == ["Connection.OpenOk"]
    assert conn.state is ConnState.OPEN


def test_connection_secure_round() -> None:
    conn = ServerConnection(SERVER_PROPERTIES, mechanisms=("SCRAM",))
    feed(conn, PROTOCOL_HEADER + START_OK)
    conn.data_to_send()
    conn.send_secure(b"challenge")
    [(_, secure)] = sent(conn)
    assert secure.name == "Connection.Secure"
    assert feed(conn, method(0, C.Connection.SecureOk("answer"))) == [SecureOkReceived(b"answer")]
    conn.accept_login()
    assert conn.state is ConnState.AWAITING_TUNE_OK


def test_negotiates_lower_limits_and_the_reader_follows() -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    feed(conn, PROTOCOL_HEADER + START_OK)
    conn.accept_login()
    feed(conn, tune_ok(channel_max=10, frame_max=8192, heartbeat=0))
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (10, 8192, 0)
    feed(conn, method(0, C.Connection.Open("/")))
    conn.accept_open()
    conn.data_to_send()
    frame = encode_frame(3, 1, bytes(8185))  # one byte over 8192 with the overhead
    assert closed_with(conn, feed(conn, frame))[0] == ReplyCode.FRAME_ERROR


@pytest.mark.parametrize(
    "tune",
    [tune_ok(frame_max=4095), tune_ok(frame_max=131073), tune_ok(channel_max=2048)],
)
def test_tune_ok_beyond_our_limits_is_530(tune: bytes) -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    feed(conn, PROTOCOL_HEADER + START_OK)
    conn.accept_login()
    conn.data_to_send()
    assert closed_with(conn, feed(conn, tune)) == (ReplyCode.NOT_ALLOWED, 10, 31)


@pytest.mark.parametrize(
    "received", [b"AMQP\x01\x01\x00\x09", b"AMQP\x00\x00\x09\x02", b"GET / HTTP/1.1\r\n\r\n"]
)
def test_wrong_protocol_header_gets_ours_and_closed(received: bytes) -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    assert feed(conn, received) == [BadProtocolHeader(received[:8])]
    assert conn.data_to_send() == PROTOCOL_HEADER
    assert conn.state is ConnState.CLOSED
    assert feed(conn, START_OK) == []


def test_header_arriving_byte_by_byte() -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    for byte in PROTOCOL_HEADER[:-1]:
        assert feed(conn, bytes([byte])) == []
    assert not conn.has_data_to_send
    feed(conn, PROTOCOL_HEADER[-1:] + START_OK[:5])
    assert conn.has_data_to_send
    assert [type(e) for e in feed(conn, START_OK[5:])] == [LoginRequested]


def test_refused_login_is_403_then_close_ok_completes() -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    feed(conn, PROTOCOL_HEADER + START_OK)
    conn.data_to_send()
    conn.refuse_login("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN.")
    [(_, close)] = sent(conn)
    assert (close.reply_code, close.class_id) == (403, 0)
    assert conn.state is ConnState.CLOSING
    conn.accept_login()  # too late: ignored, not an error
    assert feed(conn, CLOSE_OK) == [ConnectionClosed(403, close.reply_text, by_peer=False)]
    assert conn.state is ConnState.CLOSED


def test_answering_out_of_turn_is_a_bug() -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    feed(conn, PROTOCOL_HEADER)
    with pytest.raises(RuntimeError):
        conn.accept_open()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (tune_ok(), (ReplyCode.CHANNEL_ERROR, 10, 31)),  # before start-ok
        (method(0, C.Connection.Open("/")), (ReplyCode.CHANNEL_ERROR, 10, 40)),
        (method(0, C.Basic.Qos()), (ReplyCode.CHANNEL_ERROR, 60, 10)),
        (method(1, C.Channel.Open()), (ReplyCode.UNEXPECTED_FRAME, 0, 0)),
        (header(1, 0), (ReplyCode.UNEXPECTED_FRAME, 0, 0)),
    ],
)
def test_out_of_order_in_the_handshake(data: bytes, expected: tuple[int, int, int]) -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    feed(conn, PROTOCOL_HEADER)
    conn.data_to_send()
    assert closed_with(conn, feed(conn, data)) == expected


# ------------------------------------------------------------------ frames


def test_bad_frame_end_is_501_and_the_rest_is_ignored() -> None:
    conn = with_channel()
    bad = method(1, C.Basic.Qos())[:-1] + b"\x00"
    assert closed_with(conn, feed(conn, bad)) == (ReplyCode.FRAME_ERROR, 0, 0)
    # The framing is lost: nothing after it is read, not even a close-ok.
    assert feed(conn, CLOSE_OK) == []
    assert conn.state is ConnState.CLOSING


def test_oversize_frame_is_501_before_tune() -> None:
    conn = ServerConnection(SERVER_PROPERTIES)
    feed(conn, PROTOCOL_HEADER)
    conn.data_to_send()
    # Only the 7-byte header of a 1 MB frame: refused without waiting for it.
    events = feed(conn, struct.pack(">BHI", 1, 0, 1_000_000))
    assert closed_with(conn, events) == (ReplyCode.FRAME_ERROR, 0, 0)


def test_unknown_frame_type_and_method_ids() -> None:
    conn = with_channel()
    assert closed_with(conn, feed(conn, encode_frame(5, 1, b"abc")))[0] == ReplyCode.FRAME_ERROR
    conn = with_channel()
    unknown = encode_frame(1, 1, struct.pack(">HH", 60, 99))
    assert closed_with(conn, feed(conn, unknown)) == (ReplyCode.NOT_IMPLEMENTED, 60, 99)


def test_truncated_arguments_are_501() -> None:
    conn = with_channel()
    truncated = encode_frame(1, 1, struct.pack(">HHH", 50, 10, 0) + b"\x05ab")
    assert closed_with(conn, feed(conn, truncated)) == (ReplyCode.FRAME_ERROR, 50, 10)


def test_heartbeats() -> None:
    conn = with_channel()
    assert feed(conn, HEARTBEAT_FRAME) == []
    assert not conn.has_data_to_send
    conn.send_heartbeat()
    assert conn.data_to_send() == HEARTBEAT_FRAME
    assert closed_with(conn, feed(conn, encode_frame(8, 1, b""))) == (
        ReplyCode.UNEXPECTED_FRAME,
        0,
        0,
    )


def test_close_code_bytes_are_exact() -> None:
    conn = connected()
    feed(conn, method(5, C.Basic.Qos()))
    expected = C.Connection.Close(504, "CHANNEL_ERROR - expected 'channel.open'", 60, 10)
    # data_to_send was consumed by closed_with in other tests; here compare bytes.
    assert conn.data_to_send() == pamqp.frame.marshal(expected, 0)


# ------------------------------------------------------------------ channels


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (method(5, C.Basic.Qos()), (ReplyCode.CHANNEL_ERROR, 60, 10)),  # not open
        (method(1, C.Channel.Open()), (ReplyCode.CHANNEL_ERROR, 20, 10)),  # second open
        (method(0, C.Channel.Open()), (ReplyCode.CHANNEL_ERROR, 20, 10)),  # channel 0
        (method(0, C.Basic.Publish()), (ReplyCode.CHANNEL_ERROR, 60, 40)),
        (method(1, C.Connection.Open("/")), (ReplyCode.COMMAND_INVALID, 10, 40)),
        (method(1, C.Channel.CloseOk()), (ReplyCode.COMMAND_INVALID, 20, 41)),  # unsolicited
        (method(1, C.Basic.GetEmpty()), (ReplyCode.COMMAND_INVALID, 60, 72)),  # server's
        (method(1, C.Basic.Deliver("t", 1, False, "", "")), (ReplyCode.COMMAND_INVALID, 60, 60)),
        (method(0, C.Connection.CloseOk()), (ReplyCode.CHANNEL_ERROR, 10, 51)),  # unsolicited
        (method(0, C.Connection.StartOk()), (ReplyCode.CHANNEL_ERROR, 10, 11)),
    ],
)
def test_channel_errors_like_rabbitmq(data: bytes, expected: tuple[int, int, int]) -> None:
    conn = with_channel()
    assert closed_with(conn, feed(conn, data)) == expected


def test_channel_max_counts_open_channels_not_numbers() -> None:
    """RabbitMQ 3.x: any number up to 65535; the (channel_max + 1)th open channel,
    closing ones included, closes the connection with 530 naming no method."""
    conn = connected(channel_max=2)
    assert feed(conn, method(65535, C.Channel.Open())) == [ChannelOpened(65535)]
    assert feed(conn, method(2048, C.Channel.Open())) == [ChannelOpened(2048)]
    conn.close_channel(2048, ReplyCode.NOT_FOUND, "NOT_FOUND - gone")
    conn.data_to_send()
    events = feed(conn, method(7, C.Channel.Open()))
    assert closed_with(conn, events) == (ReplyCode.NOT_ALLOWED, 0, 0)
    assert events[0].text == (  # type: ignore[union-attr]
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    )


def test_a_closed_channel_frees_its_place() -> None:
    conn = connected(channel_max=1)
    feed(conn, method(1, C.Channel.Open()))
    feed(conn, method(1, C.Channel.Close(200, "bye", 0, 0)))
    assert feed(conn, method(1, C.Channel.Open())) == [ChannelOpened(1)]


def test_only_a_close_from_the_peer_leaves_the_connection_lingering() -> None:
    """After close-ok to the peer's close the glue reads on (closed_by_peer); after
    the peer's close-ok to ours there is nothing to wait for."""
    ours = with_channel()
    ours.close(ReplyCode.CONNECTION_FORCED, "CONNECTION_FORCED - bye")
    feed(ours, CLOSE_OK)
    assert ours.state is ConnState.CLOSED and not ours.closed_by_peer
    theirs = with_channel()
    feed(theirs, method(0, C.Connection.Close(200, "bye", 0, 0)) + PUBLISH)
    assert theirs.state is ConnState.CLOSED and theirs.closed_by_peer
    assert feed(theirs, PUBLISH) == []  # what follows the close is discarded


def test_channel_methods_and_peer_close() -> None:
    conn = with_channel()
    ack = method(1, C.Basic.Ack(7, multiple=True))
    declare = method(1, C.Queue.Declare(queue="q", durable=True, arguments={"x-max-length": 5}))
    events = feed(conn, ack + declare)
    assert events == [
        MethodReceived(1, m.BasicAck(7, True)),
        MethodReceived(1, m.QueueDeclare(queue="q", durable=True, arguments={"x-max-length": 5})),
    ]
    assert not conn.has_data_to_send  # answers are the adapter's
    close = method(1, C.Channel.Close(200, "bye", 0, 0))
    assert feed(conn, close) == [ChannelClosed(1, 200, "bye", by_peer=True)]
    assert [(ch, f.name) for ch, f in sent(conn)] == [(1, "Channel.CloseOk")]
    assert feed(conn, method(1, C.Channel.Open())) == [ChannelOpened(1)]  # the id is free


def test_server_closes_a_channel() -> None:
    conn = with_channel()
    conn.close_channel(1, 404, "NOT_FOUND - no queue 'q'", 50, 10)
    [(_, close)] = sent(conn)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        404,
        "NOT_FOUND - no queue 'q'",
        50,
        10,
    )
    conn.send_method(1, m.BasicQosOk())  # dropped: the channel is closing
    conn.send_deliver(1, "t", 1, False, "", "k", b"\x00\x00", b"x")
    assert not conn.has_data_to_send
    # Everything but close/close-ok is discarded while it closes (§2.3.5.2 / RabbitMQ).
    noise = method(1, C.Basic.Qos()) + PUBLISH + header(1, 3) + body(1, b"abc")
    assert feed(conn, noise) == []
    assert feed(conn, method(1, C.Channel.Close(200, "", 0, 0))) == []
    assert [f.name for _, f in sent(conn)] == ["Channel.CloseOk"]
    closed = feed(conn, method(1, C.Channel.CloseOk()))
    assert closed == [ChannelClosed(1, 404, "NOT_FOUND - no queue 'q'", by_peer=False)]
    assert feed(conn, method(1, C.Channel.Open())) == [ChannelOpened(1)]


# ------------------------------------------------------------------ content


def test_content_assembly_over_many_frames() -> None:
    conn = with_channel(frame_max=4096)
    payload = bytes(range(256)) * 100  # 25600 bytes: 7 body frames of <= 4088
    frames = [body(1, payload[i : i + 4088]) for i in range(0, len(payload), 4088)]
    data = PUBLISH + header(1, len(payload), content_type="text/plain", headers={"a": 1})
    events = feed(conn, data + b"".join(frames[:-1]))
    assert events == []
    [event] = feed(conn, frames[-1] + method(1, C.Basic.Ack(1)))[:1]
    assert isinstance(event, ContentReceived)
    assert event.method == m.BasicPublish(exchange="amq.direct", routing_key="k")
    assert event.body == payload and type(event.body) is bytes
    assert event.properties == Properties(content_type="text/plain", headers={"a": 1})
    assert event.encoded_props == header(1, 0, content_type="text/plain", headers={"a": 1})[19:-1]


def test_zero_size_body_completes_at_the_header() -> None:
    conn = with_channel()
    [event] = feed(conn, PUBLISH + header(1, 0, delivery_mode=2))
    assert isinstance(event, ContentReceived)
    assert (event.body, event.properties.delivery_mode) == (b"", 2)


def test_content_on_two_channels_interleaved() -> None:
    conn = with_channel()
    feed(conn, method(2, C.Channel.Open()))
    publish2 = method(2, C.Basic.Publish(routing_key="two"))
    data = PUBLISH + publish2 + header(1, 2) + header(2, 2) + body(2, b"b2") + body(1, b"b1")
    events = feed(conn, data)
    assert [(e.channel, e.body) for e in events if isinstance(e, ContentReceived)] == [
        (2, b"b2"),
        (1, b"b1"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (header(1, 3), (ReplyCode.UNEXPECTED_FRAME, 0, 0)),  # no method before it
        (body(1, b"abc"), (ReplyCode.UNEXPECTED_FRAME, 0, 0)),
        (PUBLISH + method(1, C.Basic.Qos()), (ReplyCode.UNEXPECTED_FRAME, 60, 40)),
        (PUBLISH + body(1, b"abc"), (ReplyCode.UNEXPECTED_FRAME, 60, 40)),  # body first
        (PUBLISH + header(1, 3, class_id=50), (ReplyCode.UNEXPECTED_FRAME, 60, 40)),
        (PUBLISH + header(1, 2) + body(1, b"abc"), (ReplyCode.UNEXPECTED_FRAME, 60, 40)),
        (PUBLISH + header(1, 9) + header(1, 9), (ReplyCode.UNEXPECTED_FRAME, 60, 40)),
        (PUBLISH + encode_frame(2, 1, b"\x00<\x00\x00" + bytes(8) + b"\x00\x02"), (501, 0, 0)),
    ],
)
def test_content_out_of_order(data: bytes, expected: tuple[int, int, int]) -> None:
    conn = with_channel()
    assert closed_with(conn, feed(conn, data)) == expected


def test_message_over_max_size_closes_the_channel_without_buffering() -> None:
    conn = with_channel(max_message_size=1000)
    assert feed(conn, PUBLISH + header(1, 10**9)) == []
    [(_, close)] = sent(conn)
    assert (close.reply_code, close.class_id, close.method_id) == (406, 60, 40)
    assert "larger than configured max size 1000" in close.reply_text
    assert feed(conn, body(1, bytes(4000)) + method(1, C.Channel.CloseOk())) == [
        ChannelClosed(1, 406, close.reply_text, by_peer=False)
    ]


# ------------------------------------------------------------------ connection close


def test_peer_closes_the_connection() -> None:
    conn = with_channel()
    events = feed(conn, method(0, C.Connection.Close(200, "Normal shutdown", 0, 0)))
    assert events == [ConnectionClosed(200, "Normal shutdown", by_peer=True)]
    assert conn.data_to_send() == CLOSE_OK
    assert conn.state is ConnState.CLOSED
    assert feed(conn, method(1, C.Basic.Qos())) == []


def test_server_closes_the_connection() -> None:
    conn = with_channel()
    conn.close(320, "CONNECTION_FORCED - broker shutdown")
    [(_, close)] = sent(conn)
    assert (close.reply_code, close.reply_text) == (320, "CONNECTION_FORCED - broker shutdown")
    conn.send_method(1, m.BasicQosOk())
    conn.send_content(1, m.BasicGetOk(1, False, "", "k", 0), b"\x00\x00", b"x")
    assert not conn.has_data_to_send
    # §2.2.4: after close, everything but close and close-ok is discarded.
    assert feed(conn, method(1, C.Basic.Qos()) + PUBLISH + HEARTBEAT_FRAME) == []
    assert feed(conn, CLOSE_OK) == [
        ConnectionClosed(320, "CONNECTION_FORCED - broker shutdown", by_peer=False)
    ]
    assert conn.state is ConnState.CLOSED


def test_both_sides_close_at_once() -> None:
    conn = connected()
    conn.close(320, "bye")
    conn.data_to_send()
    events = feed(conn, method(0, C.Connection.Close(200, "me too", 0, 0)))
    assert events == [ConnectionClosed(200, "me too", by_peer=True)]
    assert conn.data_to_send() == CLOSE_OK


def test_end_of_input() -> None:
    conn = with_channel()
    conn.receive_data(method(1, C.Basic.Ack(1)))
    conn.receive_data(b"")
    assert list(conn.next_events()) == [MethodReceived(1, m.BasicAck(1)), ConnectionLost()]
    assert conn.state is ConnState.CLOSED
    assert conn.next_event() is NEED_DATA


def test_update_secret_and_client_blocked() -> None:
    conn = connected()
    blocked = method(0, C.Connection.Blocked("x")) + method(0, C.Connection.Unblocked())
    assert feed(conn, blocked) == []  # only servers send these; ignored
    secret = method(0, C.Connection.UpdateSecret("token", "refresh"))
    assert feed(conn, secret) == [UpdateSecretRequested(b"token", "refresh")]
    conn.send_method(0, m.ConnectionUpdateSecretOk())
    conn.send_blocked("low on memory")
    conn.send_unblocked()
    names = [f.name for _, f in sent(conn)]
    assert names == ["Connection.UpdateSecretOk", "Connection.Blocked", "Connection.Unblocked"]


def test_outgoing_content_and_deliveries() -> None:
    conn = with_channel(frame_max=4096)
    conn.send_deliver(1, "ctag", 9, True, "ex", "rk", b"\x80\x00\x04text", bytes(5000))
    conn.send_content(1, m.BasicReturn(312, "NO_ROUTE", "ex", "rk"), b"\x00\x00", b"")
    frames = sent(conn)
    assert [type(f).__name__ for _, f in frames] == [
        "Deliver",
        "ContentHeader",
        "ContentBody",
        "ContentBody",
        "Return",
        "ContentHeader",
    ]
    deliver = frames[0][1]
    assert (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered) == ("ctag", 9, True)
    assert frames[1][1].properties.content_type == "text"
    assert [len(f.value) for _, f in frames[2:4]] == [4088, 912]


# ------------------------------------------------------------------ whole streams

SESSION = b"".join(
    [
        PROTOCOL_HEADER,
        START_OK,
        tune_ok(frame_max=4096, heartbeat=30),
        method(0, C.Connection.Open("/")),
        method(1, C.Channel.Open()),
        method(1, C.Confirm.Select()),
        PUBLISH,
        header(1, 5000, message_id="m1"),
        body(1, bytes(4088)),
        body(1, bytes(912)),
        HEARTBEAT_FRAME,
        PUBLISH,
        header(1, 0),
        method(1, C.Basic.Ack(2, multiple=True)),
        method(1, C.Channel.Close(200, "", 0, 0)),
        method(0, C.Connection.Close(200, "", 0, 0)),
    ]
)


def run(chunks: list[bytes]) -> tuple[list[Event], bytes]:
    """Feed chunks, answering like an adapter that accepts everything."""
    conn, events, output = ServerConnection(SERVER_PROPERTIES), [], []
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


WHOLE = run([SESSION])


def test_session_events() -> None:
    events, _ = WHOLE
    assert [type(e).__name__ for e in events] == [
        "LoginRequested",
        "OpenRequested",
        "ChannelOpened",
        "MethodReceived",
        "ContentReceived",
        "ContentReceived",
        "MethodReceived",
        "ChannelClosed",
        "ConnectionClosed",
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(SESSION)), max_size=30))
def test_every_split_of_a_session_gives_the_same_events_and_output(cuts: list[int]) -> None:
    points = sorted({0, len(SESSION), *cuts})
    chunks = [SESSION[a:b] for a, b in itertools.pairwise(points)]
    assert run(chunks) == WHOLE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_after_open_never_raises(noise: bytes) -> None:
    conn = with_channel()
    events = feed(conn, noise)
    assert all(not isinstance(e, ProtocolError) for e in events[:-1])
    if conn.state is ConnState.CLOSING:
        assert isinstance(events[-1], ProtocolError)
    assert conn.next_event() is NEED_DATA


# ------------------------------------------------------------------ the publish fast path

# A whole basic.publish (method, header, body) in the buffer is parsed in one
# step; the same bytes fed one at a time go frame by frame through the general
# path. The two must agree on every input, good or bad: events, and output.


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def after_open(chunks: list[bytes]) -> tuple[list[Event], bytes]:
    """Channels 1 and 2 open, 4 KiB frames, 3000-byte messages; then ``chunks``."""
    conn = connected(frame_max=4096, max_message_size=3000)
    feed(conn, method(1, C.Channel.Open()) + method(2, C.Channel.Open()))
    conn.data_to_send()
    events, output = [], []
    for chunk in chunks:
        events.extend(feed(conn, chunk))
        output.append(conn.data_to_send())
    return events, b"".join(output)


def publish(channel: int, key: str, payload: bytes, **props: Any) -> bytes:
    frames = [method(channel, C.Basic.Publish(exchange="x", routing_key=key))]
    frames.append(header(channel, len(payload), **props))
    frames.extend(body(channel, payload[i : i + 4088]) for i in range(0, len(payload), 4088))
    return b"".join(frames)


PROPS = st.fixed_dictionaries(
    {},
    optional={
        "content_type": st.sampled_from(["text/plain", "application/json"]),
        "delivery_mode": st.sampled_from([1, 2]),
        "headers": st.dictionaries(st.text(max_size=5), st.integers(-5, 5), max_size=2),
        "message_id": st.text(min_size=1, max_size=8),
    },
)
MESSAGES = st.lists(
    st.tuples(
        st.sampled_from([1, 1, 1, 2, 3]),  # 3 is not open: 504
        st.sampled_from(["k", "", "é"]),
        st.binary(max_size=20) | st.binary(min_size=4000, max_size=5000),
        PROPS,
    ).map(lambda t: publish(t[0], t[1], t[2], **t[3]))
    | st.sampled_from(
        [
            method(1, C.Basic.Ack(1)),
            method(2, C.Channel.Close(200, "", 0, 0)),
            HEARTBEAT_FRAME,
            body(1, b"stray"),
        ]
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(MESSAGES, st.lists(st.integers(min_value=0), max_size=6))
def test_fast_and_frame_by_frame_paths_agree(frames: list[bytes], cuts: list[int]) -> None:
    data = b"".join(frames)
    whole = after_open([data])
    assert after_open([data[i : i + 1] for i in range(len(data))]) == whole
    assert after_open(chunked(data, cuts)) == whole


@settings(max_examples=300, deadline=None)
@given(MESSAGES, st.integers(min_value=0), st.integers(0, 255), st.integers(min_value=0))
def test_fast_and_frame_by_frame_paths_agree_on_damaged_input(
    frames: list[bytes], where: int, byte: int, cut: int
) -> None:
    data = bytearray(b"".join(frames))
    data[where % len(data)] = byte
    damaged = bytes(data)
    whole = after_open([damaged])
    assert after_open([damaged[i : i + 1] for i in range(len(damaged))]) == whole
    assert after_open(chunked(damaged, [cut])) == whole


def test_publishes_in_one_read() -> None:
    conn = with_channel()
    data = b"".join(
        publish(1, f"key-{i}", bytes([i % 256]) * (i % 3), message_id=f"m{i}") for i in range(1500)
    )
    events = feed(conn, data)
    # More distinct keys and properties than the decoders keep: all still right.
    assert len(events) == 1500
    for i, event in enumerate(events):
        assert isinstance(event, ContentReceived)
        assert event.method == m.BasicPublish(exchange="x", routing_key=f"key-{i}")
        assert event.properties == Properties(message_id=f"m{i}")
        assert event.body == bytes([i % 256]) * (i % 3) and type(event.body) is bytes
        assert event.encoded_props == header(1, 0, message_id=f"m{i}")[19:-1]
    assert conn.data_to_send() == b""


def test_repeated_publishes_decode_equal_values() -> None:
    conn = with_channel()
    one = publish(1, "k", b"body", content_type="text/plain", headers={"a": 1})
    first, second = feed(conn, one + one)
    assert first == second
    assert isinstance(first, ContentReceived)
    assert first.properties == Properties(content_type="text/plain", headers={"a": 1})


def test_publish_on_a_closing_channel_is_dropped_whole() -> None:
    conn = with_channel()
    conn.close_channel(1, 406, "PRECONDITION_FAILED - test")
    conn.data_to_send()
    assert feed(conn, publish(1, "k", b"abc")) == []
    assert conn.data_to_send() == b""


def _content_header(channel: int, class_id: int, weight: int, size: int, props: bytes) -> bytes:
    return encode_frame(2, channel, struct.pack(">HHQ", class_id, weight, size) + props)


GOOD_ARGS = b"\x00\x00\x01x\x01k\x00"  # reserved, exchange "x", routing key "k", no bits
BROKEN_PUBLISHES = {
    "body longer than announced": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 2, b"\x00\x00")
    + body(1, b"abc"),
    "body shorter than announced": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 4, b"\x00\x00")
    + body(1, b"abc"),
    "body on another channel": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3, b"\x00\x00")
    + body(2, b"abc"),
    "header on another channel": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(2, 60, 0, 3, b"\x00\x00")
    + body(1, b"abc"),
    "header weight": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 1, 3, b"\x00\x00")
    + body(1, b"abc"),
    "header class": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 50, 0, 3, b"\x00\x00")
    + body(1, b"abc"),
    "unknown property flag": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3, b"\x00\x01")
    + body(1, b"abc"),
    "bytes after the properties": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3, b"\x00\x00\x00")
    + body(1, b"abc"),
    "short header": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + encode_frame(2, 1, b"\x00<\x00\x00")
    + body(1, b"abc"),
    "truncated arguments": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS[:-1])
    + _content_header(1, 60, 0, 3, b"\x00\x00")
    + body(1, b"abc"),
    "byte after the arguments": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS + b"\x00")
    + _content_header(1, 60, 0, 3, b"\x00\x00")
    + body(1, b"abc"),
    "method frame end": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)[:-1]
    + b"\x00"
    + _content_header(1, 60, 0, 3, b"\x00\x00")
    + body(1, b"abc"),
    "header frame end": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3, b"\x00\x00")[:-1]
    + b"\x00"
    + body(1, b"abc"),
    "body frame end": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3, b"\x00\x00")
    + body(1, b"abc")[:-1]
    + b"\x00",
    "oversize body frame": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 5000, b"\x00\x00")
    + body(1, bytes(5000)),
    "oversize header frame": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3, b"\x20\x00" + encode_table({"h": bytes(4100)}))
    + body(1, b"abc"),
    "over max message size": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(1, 60, 0, 3001, b"\x00\x00")
    + body(1, bytes(3001)),
    "on channel 0": encode_frame(1, 0, b"\x00<\x00(" + GOOD_ARGS)
    + _content_header(0, 60, 0, 3, b"\x00\x00")
    + body(0, b"abc"),
    "method frame shorter than its ids": encode_frame(1, 1, b"\x00<")
    + encode_frame(2, 1, b"\x00(" + GOOD_ARGS),
    "heartbeat between": encode_frame(1, 1, b"\x00<\x00(" + GOOD_ARGS)
    + HEARTBEAT_FRAME
    + _content_header(1, 60, 0, 3, b"\x00\x00")
    + body(1, b"abc"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_PUBLISHES))
def test_unusual_publishes_take_the_frame_by_frame_path(name: str) -> None:
    data = BROKEN_PUBLISHES[name] + publish(1, "after", b"ok")
    whole = after_open([data])
    assert after_open([data[i : i + 1] for i in range(len(data))]) == whole
    if name != "heartbeat between":
        assert not any(e.body == b"abc" for e in whole[0] if isinstance(e, ContentReceived))
