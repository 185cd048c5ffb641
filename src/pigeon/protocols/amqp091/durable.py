"""Replies that say a durable change happened go out once the change is on disk.

declare-ok, delete-ok, bind-ok, unbind-ok, purge-ok and tx.commit-ok of an
operation that wrote to the store wait for the store's barrier, grouped with
the message writes of the same commit (as publisher confirms are). The reply
and everything sent on its channel after it (deliveries, confirms, later
replies, a channel.close) are held back together (ServerConnection.hold), so
the channel's order is kept; other channels and the publish path are not
touched. A reply goes out at once when what it depends on is durable already,
judged by write positions, never by a flag another caller could clear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pigeon.protocols.amqp091 import methods as m
    from pigeon.protocols.amqp091.channel import Channel


def position(channel: Channel) -> int:
    """The store's write position now: take it before the change, pass it to reply()."""
    store = channel.handler.context.node.store
    return 0 if store is None else store.written


def reply(channel: Channel, method: m.Method, since: int, *, durable: bool = False) -> None:
    """Send ``method`` on ``channel`` once what it reports is on disk.

    ``since`` is :func:`position` before the change: if the store's position moved,
    the change wrote something. ``durable``: the reply names a durable object that
    may have been written by someone else and not be on disk yet (a redeclare), so it
    depends on every write queued so far. Otherwise nothing is waited for.
    """
    handler = channel.handler
    conn = handler.conn
    store = handler.context.node.store
    if store is None:
        conn.send_method(channel.number, method)
        return
    written = store.written
    if (written == since and not durable) or store.durable >= written:
        conn.send_method(channel.number, method)  # behind a hold of its channel, if any
        return
    held = conn.hold(channel.number)
    if held is None:
        return  # the channel is closing: nobody is waiting for the answer
    conn.send_method(channel.number, method)
    channel.waiting += 1

    def on_disk() -> None:
        conn.release(held)
        channel.waiting -= 1
        if not channel.waiting:
            channel.dispatch()  # deliveries paused while it waited
        handler.want_flush()

    store.sync(on_disk)
