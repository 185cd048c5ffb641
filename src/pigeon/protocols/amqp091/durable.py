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

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pigeon.protocols.amqp091 import methods as m
    from pigeon.protocols.amqp091.adapter import AMQPHandler
    from pigeon.protocols.amqp091.channel import Channel
    from pigeon.protocols.amqp091.connection import Hold


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

    The replies of one turn on a channel share one hold; :func:`sync_holds`, at the
    end of the turn, asks the store for one barrier behind all of that turn's writes.
    """
    handler = channel.handler
    conn = handler.conn
    store = handler.context.node.store
    must_wait = (
        store is not None
        and (store.written != since or durable)
        and (store.durable < store.written)
    )
    if must_wait and channel.turn_hold is None:
        held = conn.hold(channel.number)
        if held is None:
            return  # the channel is closing: nobody is waiting for the answer
        channel.turn_hold = held
        channel.waiting += 1
        handler.holding.append(channel)
    # Behind the channel's newest hold, if it has one (that keeps the channel's order).
    conn.send_method(channel.number, method)


def sync_holds(handler: AMQPHandler) -> None:
    """End of a turn: each hold taken in it is released once the turn's writes are on
    disk (the store's barrier covers every write queued before it)."""
    store = handler.context.node.store
    channels, handler.holding = handler.holding, []
    for channel in channels:
        held, channel.turn_hold = channel.turn_hold, None
        if store is None or held is None:
            continue
        store.sync(functools.partial(_on_disk, channel, held))


def _on_disk(channel: Channel, held: Hold) -> None:
    handler = channel.handler
    handler.conn.release(held)
    channel.waiting -= 1
    if not channel.waiting:
        channel.dispatch()  # its consumers were paused while it waited
    handler.want_flush()
