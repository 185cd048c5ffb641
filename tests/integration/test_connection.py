"""Connection-level behaviour as a client sees it (amqp0-9-1 §2.2.4, §4.2.3).

Handshake, server properties, SASL, protocol header, tuning (channel_max,
frame_max, heartbeat) and the life cycle of channels and connections.
"""

from __future__ import annotations

import socket
import time

import pika
import pika.exceptions
import pytest
from helpers import EXTERNAL, RawClient, connect, credentials, host_port, parameters, url_with
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pika.adapters.select_connection import SelectConnection

CAPABILITIES = (
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
)


def test_handshake_and_first_channel(amqp_url: str) -> None:
    with connect(amqp_url) as connection:
        assert connection.is_open
        channel = connection.channel()
        declared = channel.queue_declare("", exclusive=True)
        assert declared.method.queue


def test_server_properties_announce_capabilities(amqp_url: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.login(*credentials(amqp_url))
        start = raw.start
    assert (start.version_major, start.version_minor) == (0, 9)
    capabilities = start.server_properties["capabilities"]
    for name in CAPABILITIES:
        assert capabilities.get(name) is True, name
    assert "en_US" in start.locales.split()
    if not EXTERNAL:
        assert start.server_properties["product"] == "Pigeon"


def test_mechanisms_include_plain_and_amqplain(amqp_url: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.login(*credentials(amqp_url))
        mechanisms = raw.start.mechanisms.split()
    assert "PLAIN" in mechanisms
    assert "AMQPLAIN" in mechanisms


def test_plain_login_with_pika(amqp_url: str) -> None:
    user, password = credentials(amqp_url)
    params = parameters(amqp_url, credentials=pika.PlainCredentials(user, password))
    connection = pika.BlockingConnection(params)
    try:
        assert connection.channel().is_open
    finally:
        connection.close()


def test_amqplain_login(amqp_url: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.handshake(*credentials(amqp_url), mechanism="AMQPLAIN")
        raw.expect(commands.Connection.OpenOk)
        raw.send(1, commands.Channel.Open())
        raw.expect(commands.Channel.OpenOk)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_wrong_password_closes_with_access_refused(amqp_url: str, mechanism: str) -> None:
    user, _ = credentials(amqp_url)
    with RawClient(amqp_url) as raw:
        answer = raw.login(user, "not-the-password", mechanism)
    assert isinstance(answer, commands.Connection.Close)
    assert answer.reply_code == 403
    assert answer.reply_text.startswith("ACCESS_REFUSED")


def test_wrong_password_with_pika(amqp_url: str) -> None:
    with (
        pytest.raises(pika.exceptions.ProbableAuthenticationError) as caught,
        connect(url_with(amqp_url, password="not-the-password")),
    ):
        pass
    assert "403" in str(caught.value)
    assert "ACCESS_REFUSED" in str(caught.value)


def test_unknown_vhost_is_not_allowed(amqp_url: str, uid: str) -> None:
    with (
        pytest.raises(pika.exceptions.ProbableAccessDeniedError) as caught,
        connect(url_with(amqp_url, vhost=f"no-such-vhost-{uid}")),
    ):
        pass
    assert "530" in str(caught.value)
    assert "NOT_ALLOWED" in str(caught.value)
    assert f"no-such-vhost-{uid}" in str(caught.value)


def test_unknown_vhost_raw_close_code(amqp_url: str, uid: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.handshake(*credentials(amqp_url), vhost=f"no-such-vhost-{uid}")
        close = raw.expect(commands.Connection.Close)
    assert close.reply_code == 530


@pytest.mark.parametrize(
    "header",
    [b"AMQP\x00\x00\x08\x00", b"AMQP\x00\x00\x09\x02", b"GET / HTTP/1.1\r\n\r\n", b"XXXXXXXX"],
)
def test_unsupported_protocol_header_gets_ours_and_close(amqp_url: str, header: bytes) -> None:
    # amqp0-9-1 §4.2.2: answer with the supported protocol header, then close.
    with socket.create_connection(host_port(amqp_url), timeout=5) as sock:
        sock.sendall(header)
        received = b""
        closed = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = sock.recv(1024)
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            received += data
    assert received == b"AMQP\x00\x00\x09\x01"
    assert closed


def test_channel_max_is_negotiated_and_enforced(amqp_url: str) -> None:
    with connect(amqp_url, channel_max=3) as connection:
        channels = [connection.channel() for _ in range(3)]
        assert all(channel.is_open for channel in channels)
        # Bypass pika's own limit: the broker must refuse channel 4 (530).
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
            connection.channel(channel_number=4)
        assert caught.value.reply_code == 530
        assert "channel_max" in caught.value.reply_text


def test_channel_max_raw(amqp_url: str) -> None:
    with RawClient(amqp_url) as raw:
        tune = raw.handshake(*credentials(amqp_url), channel_max=2)
        assert tune.channel_max == 0 or tune.channel_max >= 2
        raw.expect(commands.Connection.OpenOk)
        for number in (1, 2):
            raw.send(number, commands.Channel.Open())
            raw.expect(commands.Channel.OpenOk)
        raw.send(3, commands.Channel.Open())
        close = raw.expect(commands.Connection.Close)
    assert close.reply_code == 530


def test_deliveries_respect_negotiated_frame_max(amqp_url: str, uid: str) -> None:
    queue = f"frame-max-{uid}"
    body = bytes(range(256)) * 40  # 10,240 bytes: three body frames at frame_max 4096
    with connect(amqp_url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        channel.basic_publish("", queue, body)
        with RawClient(amqp_url) as raw:
            tune = raw.handshake(*credentials(amqp_url), frame_max=4096)
            assert tune.frame_max == 0 or tune.frame_max >= 4096
            raw.expect(commands.Connection.OpenOk)
            raw.send(1, commands.Channel.Open())
            raw.expect(commands.Channel.OpenOk)
            raw.send(1, commands.Basic.Get(queue=queue, no_ack=True))
            raw.expect(commands.Basic.GetOk)
            size, _, header = raw.read_frame()
            assert isinstance(header, ContentHeader)
            assert header.body_size == len(body)
            received = b""
            while len(received) < len(body):
                size, _, frame = raw.read_frame()
                assert isinstance(frame, ContentBody)
                assert size <= 4096
                received += frame.value
        assert received == body
        channel.queue_delete(queue)


def test_frame_larger_than_frame_max_is_a_frame_error(amqp_url: str, uid: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.handshake(*credentials(amqp_url), frame_max=4096)
        raw.expect(commands.Connection.OpenOk)
        raw.send(1, commands.Channel.Open())
        raw.expect(commands.Channel.OpenOk)
        raw.send(1, commands.Basic.Publish(exchange="", routing_key=f"nowhere-{uid}"))
        raw.send(1, ContentHeader(0, 10_000, commands.Basic.Properties()))
        raw.send(1, ContentBody(b"x" * 10_000))
        close = raw.expect(commands.Connection.Close)
    assert close.reply_code == 501


def test_silent_client_is_dropped_after_missed_heartbeats(amqp_url: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.handshake(*credentials(amqp_url), heartbeat=1)
        raw.expect(commands.Connection.OpenOk)
        started = time.monotonic()
        # We never send a heartbeat; the broker must give up after ~2 intervals.
        assert raw.is_closed_by_peer(timeout=8.0)
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 8.0


def test_live_client_with_heartbeats_stays_connected(amqp_url: str) -> None:
    with connect(amqp_url, heartbeat=1) as connection:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        assert connection.is_open
        channel = connection.channel()
        assert channel.queue_declare("", exclusive=True).method.queue


def test_many_channels_on_one_connection(amqp_url: str, uid: str) -> None:
    with connect(amqp_url) as connection:
        channels = [connection.channel() for _ in range(100)]
        for index, channel in enumerate(channels):
            channel.queue_declare(f"many-{uid}-{index}", exclusive=True)
        for index, channel in enumerate(channels):
            ok = channel.queue_declare(f"many-{uid}-{index}", passive=True)
            assert ok.method.queue == f"many-{uid}-{index}"
            channel.close()
        assert connection.is_open


def test_channel_close_and_reopen_same_number(amqp_url: str, uid: str) -> None:
    queue = f"reopen-{uid}"
    with connect(amqp_url) as connection:
        channel = connection.channel()
        number = channel.channel_number
        channel.queue_declare(queue, exclusive=True)
        channel.close()
        assert channel.is_closed
        again = connection.channel(channel_number=number)
        assert again.queue_declare(queue, passive=True).method.queue == queue


def test_client_close_ends_connection_and_its_exclusive_queues(amqp_url: str, uid: str) -> None:
    queue = f"client-close-{uid}"
    connection = pika.BlockingConnection(parameters(amqp_url))
    connection.channel().queue_declare(queue, exclusive=True)
    connection.close()
    assert connection.is_closed
    with connect(amqp_url) as other:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            other.channel().queue_declare(queue, passive=True)
        assert caught.value.reply_code == 404


def test_select_connection_round_trip(amqp_url: str, uid: str) -> None:
    """The callback-style adapter: open, declare, publish, consume, close."""
    queue = f"select-{uid}"
    events: list[str] = []
    received: list[bytes] = []

    def on_open(connection: SelectConnection) -> None:
        events.append("open")
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: pika.channel.Channel) -> None:
        channel.queue_declare(queue, exclusive=True, callback=lambda _frame: on_declared(channel))

    def on_declared(channel: pika.channel.Channel) -> None:
        channel.basic_consume(queue, on_message, auto_ack=True)
        channel.basic_publish("", queue, b"via select")

    def on_message(
        channel: pika.channel.Channel, _method: object, _props: object, body: bytes
    ) -> None:
        received.append(body)
        channel.connection.close()

    def on_closed(connection: SelectConnection, reason: BaseException) -> None:
        events.append("closed")
        connection.ioloop.stop()

    connection = SelectConnection(
        parameters(amqp_url),
        on_open_callback=on_open,
        on_open_error_callback=lambda conn, error: conn.ioloop.stop(),
        on_close_callback=on_closed,
    )
    timer = connection.ioloop.call_later(10, connection.ioloop.stop)
    try:
        connection.ioloop.start()
        connection.ioloop.remove_timeout(timer)
        if not connection.is_closed:
            connection.close()
            connection.ioloop.start()
    finally:
        # The ioloop owns a wake-up socket pair; close it or it leaks a ResourceWarning.
        connection.ioloop.close()
    assert received == [b"via select"]
    assert events == ["open", "closed"]


def test_close_handshakes_on_the_wire(amqp_url: str) -> None:
    # amqp0-9-1 §4.2.3: channel.close -> close-ok; connection.close -> close-ok. The
    # client, having sent the close, is the one that then closes the socket.
    with RawClient(amqp_url) as raw:
        raw.handshake(*credentials(amqp_url))
        raw.expect(commands.Connection.OpenOk)
        raw.send(1, commands.Channel.Open())
        raw.expect(commands.Channel.OpenOk)
        raw.send(1, commands.Channel.Close(200, "bye", 0, 0))
        raw.expect(commands.Channel.CloseOk)
        raw.send(1, commands.Channel.Open())
        raw.expect(commands.Channel.OpenOk)
        raw.send(0, commands.Connection.Close(200, "bye", 0, 0))
        raw.expect(commands.Connection.CloseOk)
