"""ServerConnection.hold/release: a reply waiting for the disk keeps its channel's order.

Sans-IO: a connection fed raw bytes, its output parsed with pamqp.
"""

from __future__ import annotations

from pamqp import commands as C
from test_server_connection import feed, method, sent, with_channel

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.connection import ChannelOpened, ServerConnection


def names(conn: ServerConnection) -> list[tuple[int, str]]:
    return [(channel, type(frame).__name__) for channel, frame in sent(conn)]


def test_frames_after_a_hold_wait_for_it_other_channels_do_not() -> None:
    conn = with_channel()
    assert feed(conn, method(2, C.Channel.Open())) == [ChannelOpened(2)]
    conn.data_to_send()
    held = conn.hold(1)
    assert held is not None and conn.holding(1)
    conn.send_method(1, m.QueueDeclareOk(queue="q", message_count=0, consumer_count=0))
    conn.send_method(1, m.BasicQosOk())
    conn.send_deliver(1, "ctag", 1, False, "", "q", b"\x00\x00", b"body")
    conn.send_method(2, m.QueueDeclareOk(queue="other", message_count=0, consumer_count=0))
    assert names(conn) == [(2, "DeclareOk")]
    conn.release(held)
    assert not conn.holding(1)
    assert names(conn) == [
        (1, "DeclareOk"),
        (1, "QosOk"),
        (1, "Deliver"),
        (1, "ContentHeader"),
        (1, "ContentBody"),
    ]


def test_holds_are_released_in_the_order_they_were_taken() -> None:
    conn = with_channel()
    first = conn.hold(1)
    conn.send_method(1, m.QueueDeclareOk(queue="first", message_count=0, consumer_count=0))
    second = conn.hold(1)
    conn.send_method(1, m.QueueDeclareOk(queue="second", message_count=0, consumer_count=0))
    assert first is not None and second is not None
    conn.release(second)  # its barrier came first: it still waits for the one before
    assert sent(conn) == []
    conn.release(first)
    assert [frame.queue for _, frame in sent(conn)] == ["first", "second"]


def test_a_server_close_follows_the_held_replies() -> None:
    conn = with_channel()
    held = conn.hold(1)
    conn.send_method(1, m.QueueDeclareOk(queue="q", message_count=0, consumer_count=0))
    conn.close_channel(1, 404, "NOT_FOUND - no queue 'x'", 50, 10)
    assert sent(conn) == []
    assert held is not None
    conn.release(held)
    assert names(conn) == [(1, "DeclareOk"), (1, "Close")]


def test_held_frames_of_a_channel_the_client_closed_are_dropped() -> None:
    conn = with_channel()
    held = conn.hold(1)
    conn.send_method(1, m.QueueDeclareOk(queue="q", message_count=0, consumer_count=0))
    feed(conn, method(1, C.Channel.Close(200, "bye", 0, 0)))
    assert names(conn) == [(1, "CloseOk")]
    feed(conn, method(1, C.Channel.Open()))  # the same number, a new channel
    conn.data_to_send()
    assert held is not None
    conn.release(held)
    assert sent(conn) == [], "a reply of the old channel reached the new one"
    assert conn.hold(1) is not None  # the new channel holds on its own
