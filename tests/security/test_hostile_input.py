"""Hostile input over raw sockets: one test per case of issue 6.

Each case checks the answer (connection.close with RabbitMQ's code, or the
socket dropped where that is the protocol's answer) and that the broker
still serves another client afterwards. Codes are RabbitMQ 3.10's, observed
with the same bytes, except where a comment says otherwise.
"""

from __future__ import annotations

import struct
import time

import pika
import pika.exceptions
import pytest
from pamqp import commands
from raw_amqp import (
    PROTOCOL_HEADER,
    Closed,
    RawClient,
    assert_serving,
    content_header,
    method_payload,
    plain,
    raw_frame,
)

from pigeon.broker import Broker
from pigeon.config import Config

FRAME_ERROR, SYNTAX_ERROR, COMMAND_INVALID, CHANNEL_ERROR = 501, 502, 503, 504
UNEXPECTED_FRAME, NOT_ALLOWED, NOT_IMPLEMENTED = 505, 530, 540
PRECONDITION_FAILED, ACCESS_REFUSED = 406, 403
# Issue 6: frames before connection.tune-ok are at most this large.
FRAME_MAX_BEFORE_TUNE = 8192


def closed_with(client: RawClient, code: int) -> commands.Connection.Close:
    close = client.expect_connection_close()
    assert close.reply_code == code, close
    client.expect_eof()
    return close


def test_garbage_mid_stream(port: int) -> None:
    with RawClient(port) as client:
        client.handshake()
        client.open_channel(1)
        client.send(b"\x00garbage that is no frame\xce" * 4)
        closed_with(client, FRAME_ERROR)
    assert_serving(port)


def test_wrong_protocol_header_gets_ours_and_a_close(port: int) -> None:
    with RawClient(port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.read_raw(8) == PROTOCOL_HEADER  # amqp0-9-1 §4.2.2
        client.expect_eof()
    assert_serving(port)


def test_older_protocol_version_is_refused(port: int) -> None:
    with RawClient(port) as client:
        client.send(b"AMQP\x01\x01\x00\x09")  # 0-9 (the pre-0-9-1 header)
        assert client.read_raw(8) == PROTOCOL_HEADER
        client.expect_eof()
    assert_serving(port)


def test_frame_larger_than_negotiated(port: int) -> None:
    with RawClient(port) as client:
        client.handshake(frame_max=4096)
        client.open_channel(1)
        client.send(raw_frame(1, 1, method_payload(50, 10) + b"x" * 5000))
        close = closed_with(client, FRAME_ERROR)
        assert "4088" in close.reply_text  # the limit counts the 8 bytes of framing
    assert_serving(port)


def test_frame_size_is_refused_from_its_header_alone(port: int) -> None:
    """A frame announcing 2 GiB is refused before a byte of its payload is sent."""
    with RawClient(port) as client:
        client.handshake()
        client.send(struct.pack(">BHI", 3, 1, 0x7FFF_FFFF))
        closed_with(client, FRAME_ERROR)
    assert_serving(port)


def test_oversize_frame_before_tune(port: int) -> None:
    with RawClient(port) as client:
        client.start()
        client.send(raw_frame(1, 0, method_payload(10, 11) + b"x" * FRAME_MAX_BEFORE_TUNE))
        closed_with(client, FRAME_ERROR)
    assert_serving(port)


def test_frame_max_before_tune_is_small_even_if_announced_later(port: int) -> None:
    """The pre-tune limit applies to start-ok, however big frame_max will be after tune."""
    with RawClient(port) as client:
        client.start()
        props = {"product": "raw", "padding": "p" * (FRAME_MAX_BEFORE_TUNE + 100)}
        client.send_method(
            commands.Connection.StartOk(
                client_properties=props, mechanism="PLAIN", response=plain("guest", "guest")
            )
        )
        closed_with(client, FRAME_ERROR)
    assert_serving(port)


def test_body_frames_beyond_the_declared_body_size(port: int) -> None:
    with RawClient(port) as client:
        client.handshake()
        client.open_channel(1)
        client.send_method(commands.Basic.Publish(exchange="", routing_key="nowhere"), 1)
        client.send(raw_frame(2, 1, content_header(3)))
        client.send(raw_frame(3, 1, b"abcdef"))
        closed_with(client, UNEXPECTED_FRAME)
    assert_serving(port)


def test_body_over_the_maximum_message_size_closes_the_channel(port: int) -> None:
    """Refused from the content header, before any body is buffered (RabbitMQ: 406)."""
    limit = Config().max_message_size
    with RawClient(port) as client:
        client.handshake()
        client.open_channel(1)
        client.send_method(commands.Basic.Publish(exchange="", routing_key="nowhere"), 1)
        client.send(raw_frame(2, 1, content_header(limit + 1)))
        client.send(raw_frame(3, 1, b"x" * 1000))  # dropped while the channel closes
        close = client.expect(commands.Channel.Close, 1)
        assert close.reply_code == PRECONDITION_FAILED
        assert str(limit) in close.reply_text
        client.send_method(commands.Channel.CloseOk(), 1)
        client.open_channel(2)  # the connection itself is fine
    assert_serving(port)


def test_default_limits_are_rabbitmqs() -> None:
    config = Config()
    assert config.frame_max == 131072
    assert config.channel_max == 2047
    assert config.heartbeat == 60
    assert config.max_message_size == 16 * 1024 * 1024  # RabbitMQ 4.x's default
    assert config.host == "127.0.0.1"


def test_short_string_running_past_the_frame(port: int) -> None:
    """A shortstr's length octet says 255 where ten bytes follow (the most a
    hostile shortstr can claim): 501, as from RabbitMQ ("cannot decode")."""
    with RawClient(port) as client:
        client.handshake()
        client.open_channel(1)
        client.send(raw_frame(1, 1, method_payload(50, 10, b"\x00\x00\xff" + b"q" * 10)))
        close = closed_with(client, FRAME_ERROR)
        assert (close.class_id, close.method_id) == (50, 10)
    assert_serving(port)


def test_long_string_claiming_more_than_the_frame(port: int) -> None:
    with RawClient(port) as client:
        client.start()
        args = (
            struct.pack(">I", 0) + b"\x05PLAIN" + struct.pack(">I", 0xFFFF_FFF0) + b"\0guest\0guest"
        )
        client.send(raw_frame(1, 0, method_payload(10, 11, args)))
        closed_with(client, FRAME_ERROR)
    assert_serving(port)


def _nested_table(depth: int) -> bytes:
    table = struct.pack(">I", 0)
    for _ in range(depth):
        entry = b"\x01kF" + table
        table = struct.pack(">I", len(entry)) + entry
    return table


def test_deeply_nested_field_tables(port: int) -> None:
    with RawClient(port) as client:
        client.start()
        args = (
            _nested_table(500)
            + b"\x05PLAIN"
            + struct.pack(">I", 12)
            + b"\0guest\0guest"
            + b"\x05en_US"
        )
        client.send(raw_frame(1, 0, method_payload(10, 11, args)))
        closed_with(client, FRAME_ERROR)
    assert_serving(port)


@pytest.mark.parametrize(("class_id", "method_id"), [(999, 1), (50, 99), (60, 255)])
def test_unknown_classes_and_methods(port: int, class_id: int, method_id: int) -> None:
    """RabbitMQ drops the socket; Pigeon answers 540 so the client learns why."""
    with RawClient(port) as client:
        client.handshake()
        client.open_channel(1)
        client.send(raw_frame(1, 1, method_payload(class_id, method_id)))
        close = closed_with(client, NOT_IMPLEMENTED)
        assert (close.class_id, close.method_id) == (class_id, method_id)
    assert_serving(port)


def test_content_body_without_a_header(port: int) -> None:
    with RawClient(port) as client:
        client.handshake()
        client.open_channel(1)
        client.send_method(commands.Basic.Publish(exchange="", routing_key="nowhere"), 1)
        client.send(raw_frame(3, 1, b"body"))
        close = closed_with(client, UNEXPECTED_FRAME)
        assert close.reply_text.startswith("UNEXPECTED_FRAME - expected content header")
    assert_serving(port)


def test_method_on_an_unopened_channel(port: int) -> None:
    with RawClient(port) as client:
        client.handshake()
        client.send_method(commands.Queue.Declare(queue="never"), 5)
        close = closed_with(client, CHANNEL_ERROR)
        assert close.reply_text == "CHANNEL_ERROR - expected 'channel.open'"
    assert_serving(port)


def test_content_on_an_unopened_channel(port: int) -> None:
    """RabbitMQ: 505 "expected method frame, got non method frame instead"."""
    with RawClient(port) as client:
        client.handshake()
        client.send(raw_frame(3, 7, b"body"))
        closed_with(client, UNEXPECTED_FRAME)
    assert_serving(port)


def test_more_channels_than_the_negotiated_channel_max(port: int) -> None:
    """channel_max bounds the channels open at once; their numbers may be any (RabbitMQ)."""
    with RawClient(port) as client:
        client.handshake(channel_max=2)
        client.open_channel(11)
        client.open_channel(65535)
        client.send_method(commands.Channel.Open(), 3)
        close = closed_with(client, NOT_ALLOWED)
    assert close.reply_text == (
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    )
    assert_serving(port)


def test_more_channels_than_the_default_channel_max(port: int) -> None:
    with RawClient(port) as client:
        tune = client.handshake(channel_max=0)  # 0: "no limit of mine", the server's applies
        assert tune.channel_max == 2047
        client.send(
            b"".join(
                raw_frame(1, number, method_payload(20, 10, b"\x00")) for number in range(1, 2048)
            )
        )
        for number in range(1, 2048):
            client.expect(commands.Channel.OpenOk, number)
        client.send_method(commands.Channel.Open(), 65535)
        closed_with(client, NOT_ALLOWED)
    assert_serving(port)


def test_channel_method_before_connection_open(port: int) -> None:
    with RawClient(port) as client:
        client.login()
        client.send_method(commands.Channel.Open(), 1)
        closed_with(client, UNEXPECTED_FRAME)
    assert_serving(port)


def test_wrong_password_is_refused(port: int) -> None:
    with RawClient(port) as client:
        client.start()
        client.send_method(
            commands.Connection.StartOk(
                client_properties={}, mechanism="PLAIN", response=plain("guest", "wrong")
            )
        )
        close = closed_with(client, ACCESS_REFUSED)
        assert "PLAIN" in close.reply_text and "wrong" not in close.reply_text
    assert_serving(port)


@pytest.mark.parametrize("mechanism", ["ANONYMOUS", "EXTERNAL", ""])
def test_no_anonymous_login(port: int, mechanism: str) -> None:
    """Without TLS no mechanism works without a credential (EXTERNAL needs a certificate)."""
    with RawClient(port) as client:
        start = client.start()
        assert b"ANONYMOUS" not in start.mechanisms.encode()
        assert b"EXTERNAL" not in start.mechanisms.encode()
        client.send_method(
            commands.Connection.StartOk(client_properties={}, mechanism=mechanism, response="")
        )
        closed_with(client, ACCESS_REFUSED)
    assert_serving(port)


def test_client_that_never_finishes_the_handshake(port: int) -> None:
    """Dropped after the 10 s handshake timeout; others are served meanwhile."""
    with RawClient(port, timeout=15) as silent, RawClient(port, timeout=15) as half:
        half.start()  # header sent, start-ok never
        started = time.monotonic()
        assert_serving(port)
        half.expect_eof(timeout=15)
        silent.expect_eof(timeout=15)
        assert 9 < time.monotonic() - started < 14
    assert_serving(port)


def test_client_that_stops_sending_misses_heartbeats(port: int) -> None:
    with RawClient(port) as client:
        client.handshake(heartbeat=1)
        client.open_channel(1)
        started = time.monotonic()
        client.expect_eof(timeout=8)  # heartbeats from us are read and ignored
        assert time.monotonic() - started >= 1
    assert_serving(port)


def test_client_that_stops_reading(port: int, broker: object) -> None:
    """A consumer that never reads: the broker stops delivering to it when its
    socket is full (the rest stays in the queue) and serves everyone else."""
    queue = f"stuck-{time.monotonic_ns()}"
    with RawClient(port) as stuck:
        stuck.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
        stuck.handshake()
        stuck.open_channel(1)
        stuck.send_method(commands.Queue.Declare(queue=queue), 1)
        stuck.expect(commands.Queue.DeclareOk, 1)
        stuck.send_method(commands.Basic.Consume(queue=queue, no_ack=True), 1)
        stuck.expect(commands.Basic.ConsumeOk, 1)
        body = b"m" * 65536
        with RawClient(port) as publisher:
            publisher.handshake()
            publisher.open_channel(1)
            for _ in range(400):  # 25 MiB: far more than socket buffers hold
                publisher.publish(1, "", queue, body)
            publisher.send_method(commands.Queue.Declare(queue=queue, passive=True), 1)
            ok = publisher.expect(commands.Queue.DeclareOk, 1)
            deadline = time.monotonic() + 10
            while ok.message_count == 0 and time.monotonic() < deadline:
                publisher.send_method(commands.Queue.Declare(queue=queue, passive=True), 1)
                ok = publisher.expect(commands.Queue.DeclareOk, 1)
            assert ok.message_count > 0, "everything went into the stuck client's buffers"
            assert_serving(port)
            publisher.send_method(commands.Queue.Delete(queue=queue), 1)
            publisher.expect(commands.Queue.DeleteOk, 1)


def test_closed_socket_mid_frame_leaves_others_alone(port: int) -> None:
    with RawClient(port) as client:
        client.handshake()
        client.send(struct.pack(">BHI", 1, 0, 100) + b"half")
    assert_serving(port)
    with RawClient(port) as client, pytest.raises(Closed):
        client.send(PROTOCOL_HEADER[:4])
        client.sock.shutdown(__import__("socket").SHUT_WR)
        client.read_frame()


def test_start_ok_up_to_the_pre_tune_limit_is_accepted(port: int) -> None:
    """An OAuth 2 token makes start-ok big: up to 8192 bytes must still log in."""
    with RawClient(port) as client:
        client.start()
        props = {"product": "raw", "padding": "p" * (FRAME_MAX_BEFORE_TUNE - 200)}
        client.send_method(
            commands.Connection.StartOk(
                client_properties=props, mechanism="PLAIN", response=plain("guest", "guest")
            )
        )
        client.expect(commands.Connection.Tune)


def test_connection_limits_per_user_and_per_vhost_from_the_config() -> None:
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=None,
        management_port=None,
        user_max_connections={"guest": 1},
        vhost_max_connections={"/": 5},
    )
    with Broker.in_thread(config) as broker:
        first = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        try:
            # pika reports a close during connection.open as a probable access denial.
            with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
                pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
            assert "(530)" in str(refused.value)
            assert "user connection limit (1) is reached" in str(refused.value)
            assert first.channel().queue_declare("", exclusive=True)  # the first one is fine
        finally:
            first.close()
        # Closing frees the place again.
        again = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        again.close()
