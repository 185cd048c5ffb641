"""A channel's confirm and transaction modes: confirm.select, tx.select/commit/rollback.

A transaction holds the channel's publishes and settlements until tx.commit,
which applies them in order and answers once what they wrote is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pigeon.core.message import Message
from pigeon.errors import PreconditionFailed
from pigeon.protocols.amqp091 import durable
from pigeon.protocols.amqp091 import methods as m

if TYPE_CHECKING:
    from pigeon.protocols.amqp091.channel import Channel


@dataclass(slots=True)
class Transaction:
    """What a tx channel has done since its last commit or rollback."""

    publishes: list[tuple[m.BasicPublish, Message]] = field(default_factory=list)
    # (delivery tag, multiple, ack, requeue)
    settlements: list[tuple[int, bool, bool, bool]] = field(default_factory=list)


def confirm_select(channel: Channel, method: m.ConfirmSelect) -> None:
    if channel.tx is not None:
        raise PreconditionFailed("cannot switch from tx to confirm mode")
    channel.confirming = True
    if not method.no_wait:
        channel.handler.conn.send_method(channel.number, m.ConfirmSelectOk())


def tx_select(channel: Channel) -> None:
    if channel.confirming:
        raise PreconditionFailed("cannot switch from confirm to tx mode")
    if channel.tx is None:
        channel.tx = Transaction()
    channel.handler.conn.send_method(channel.number, m.TxSelectOk())


def tx_commit(channel: Channel) -> None:
    if channel.tx is None:
        raise PreconditionFailed("channel is not transactional")
    tx, channel.tx = channel.tx, Transaction()
    since = durable.position(channel)
    for method, message in tx.publishes:
        channel.route(method, message)
    for delivery_tag, multiple, ack, requeue in tx.settlements:
        channel.apply_settlement(channel.take(delivery_tag, multiple), ack=ack, requeue=requeue)
    # Persistent messages stored and acks removed: commit-ok once they are on disk.
    durable.reply(channel, m.TxCommitOk(), since)


def tx_rollback(channel: Channel) -> None:
    if channel.tx is None:
        raise PreconditionFailed("channel is not transactional")
    # Rolled-back acks leave the messages unacknowledged, as before the transaction.
    channel.tx = Transaction()
    channel.handler.conn.send_method(channel.number, m.TxRollbackOk())
