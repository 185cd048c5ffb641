"""AMQP 0-9-1 adapter: connection events in, core calls, protocol answers out.

One :class:`AMQPHandler` per client connection. It owns the sans-IO
:class:`ServerConnection` and the channels; the asyncio glue
(:mod:`pigeon.transport.glue`, through :mod:`.session`) only moves bytes and
runs timers. Core errors become channel or connection closes through one
table, :data:`REPLY_CODES`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pigeon.auth.authorization import Identity
from pigeon.auth.gate import LoginAttempt
from pigeon.core.ports import Scheduler, TimerHandle
from pigeon.core.vhost import VirtualHost
from pigeon.errors import (
    AccessRefused,
    CommandInvalid,
    InternalError,
    NotAllowed,
    NotFound,
    NotSupported,
    PigeonError,
    PreconditionFailed,
    ResourceLimit,
    ResourceLocked,
)
from pigeon.operations.services import Services
from pigeon.operations.sessions import SessionInfo
from pigeon.protocols.amqp091 import connection as c
from pigeon.protocols.amqp091 import consuming as k
from pigeon.protocols.amqp091 import declarations as d
from pigeon.protocols.amqp091 import durable, modes
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.channel import Channel
from pigeon.protocols.amqp091.login import Login
from pigeon.protocols.amqp091.replies import ReplyCode
from pigeon.version import __version__

log = logging.getLogger("pigeon.amqp")

# The one table from neutral errors to AMQP answers (amqp0-9-1 §1.5.2 reply codes).
# Channel-level codes close the channel; the others close the connection.
REPLY_CODES: dict[type[PigeonError], ReplyCode] = {
    NotFound: ReplyCode.NOT_FOUND,
    AccessRefused: ReplyCode.ACCESS_REFUSED,
    ResourceLocked: ReplyCode.RESOURCE_LOCKED,
    PreconditionFailed: ReplyCode.PRECONDITION_FAILED,
    NotAllowed: ReplyCode.NOT_ALLOWED,
    CommandInvalid: ReplyCode.COMMAND_INVALID,
    NotSupported: ReplyCode.NOT_IMPLEMENTED,
    ResourceLimit: ReplyCode.RESOURCE_ERROR,
    InternalError: ReplyCode.INTERNAL_ERROR,
}
CHANNEL_LEVEL = frozenset(
    {
        ReplyCode.NOT_FOUND,
        ReplyCode.ACCESS_REFUSED,
        ReplyCode.RESOURCE_LOCKED,
        ReplyCode.PRECONDITION_FAILED,
    }
)

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


def server_properties() -> dict[str, Any]:
    return {
        "product": "Pigeon",
        "version": __version__,
        "platform": "Python",
        "copyright": "The Pigeon authors",
        "information": "Licensed under the Apache License 2.0",
        "capabilities": {name: True for name in CAPABILITIES},
        "cluster_name": "pigeon@localhost",
    }


@dataclass
class AMQPSettings:
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    # RabbitMQ 4's default (3.x: 128 MiB); config.Config.max_message_size sets it.
    max_message_size: int = 16 * 1024 * 1024


ChannelMethod = Callable[[Channel, Any], None]

CHANNEL_METHODS: dict[type[m.Method], ChannelMethod] = {
    m.ExchangeDeclare: d.exchange_declare,
    m.ExchangeDelete: d.exchange_delete,
    m.ExchangeBind: d.exchange_bind,
    m.ExchangeUnbind: d.exchange_unbind,
    m.QueueDeclare: d.queue_declare,
    m.QueueBind: d.queue_bind,
    m.QueueUnbind: d.queue_unbind,
    m.QueuePurge: d.queue_purge,
    m.QueueDelete: d.queue_delete,
    m.BasicQos: k.qos,
    m.BasicConsume: k.consume,
    m.BasicCancel: k.cancel,
    m.BasicGet: k.get,
    m.BasicAck: lambda ch, x: ch.settle(x.delivery_tag, x.multiple, ack=True, requeue=False),
    m.BasicNack: lambda ch, x: ch.settle(x.delivery_tag, x.multiple, ack=False, requeue=x.requeue),
    m.BasicReject: lambda ch, x: ch.settle(x.delivery_tag, False, ack=False, requeue=x.requeue),
    m.BasicRecover: lambda ch, x: _recover(ch, x.requeue, m.BasicRecoverOk()),
    m.BasicRecoverAsync: lambda ch, x: _recover(ch, x.requeue, None),
    m.ChannelFlow: lambda ch, x: ch.flow(x.active),
    m.ConfirmSelect: modes.confirm_select,
    m.TxSelect: lambda ch, x: modes.tx_select(ch),
    m.TxCommit: lambda ch, x: modes.tx_commit(ch),
    m.TxRollback: lambda ch, x: modes.tx_rollback(ch),
}


def _recover(channel: Channel, requeue: bool, ok: m.Method | None) -> None:
    if not requeue:
        # Redelivering to the same consumer without requeueing: RabbitMQ refuses it too.
        raise NotSupported("requeue=false")
    channel.recover()
    if ok is not None:
        channel.handler.conn.send_method(channel.number, ok)


class AMQPHandler(Login):
    """One client connection's protocol logic, independent of sockets."""

    def __init__(
        self,
        context: Services,
        scheduler: Scheduler,
        *,
        settings: AMQPSettings | None = None,
        peer: str = "",
        loopback: bool = True,
        want_flush: Callable[[], None] = lambda: None,
        certificate: dict[str, Any] | None = None,
        tls: bool = False,
    ) -> None:
        settings = settings or AMQPSettings()
        self.context = context
        self.settings = settings
        self.scheduler = scheduler
        self.replies = context.replies
        self.peer = peer
        self.loopback = loopback
        self.want_flush = want_flush
        self.certificate = certificate
        self.tls = tls
        self.conn = c.ServerConnection(
            server_properties=server_properties(),
            mechanisms=context.authenticator.mechanisms(external=bool(certificate)),
            channel_max=settings.channel_max,
            frame_max=settings.frame_max,
            heartbeat=settings.heartbeat,
            max_message_size=settings.max_message_size,
        )
        self.channels: dict[int, Channel] = {}
        self.username = ""
        self.identity: Identity | None = None
        self._counted: tuple[str, str] | None = None  # (vhost, user) in the limits
        self._attempt: LoginAttempt | None = None  # a login waiting at the gate
        self._expiry_timer: TimerHandle | None = None
        self.client_properties: dict[str, Any] = {}
        self._vhost: VirtualHost | None = None
        self.output_paused = False
        self.closed = False
        self._syncing = 0  # store barriers this connection waits for
        self.holding: list[Channel] = []  # channels with a reply held this turn
        # A resource alarm stopped this connection after it published (RabbitMQ's
        # "blocked"): nothing more is read from it until the alarms clear.
        self.blocked = False
        self._told_blocked = False
        self.published = False  # this turn handled a publish (for flow control)
        self.output_starved = False  # a consumer waits for the output to be written

    @property
    def vhost(self) -> VirtualHost:
        assert self._vhost is not None, "channel methods only arrive after connection.open"
        return self._vhost

    @property
    def vhost_name(self) -> str | None:
        return self._vhost.name if self._vhost is not None else None

    @property
    def spec_qos(self) -> bool:
        """Whether ``basic.qos(global=false)`` means "per channel" for this client.

        kombu (Celery's transport, product "py-amqp") decides the meaning from the
        server's product: for anything but RabbitMQ 3.3-3.x it assumes the 0-9-1
        spec's per-channel limit, and raises the limit while holding ETA tasks,
        expecting it to apply at once. Giving it that meaning keeps Celery's
        prefetch correct; every other client gets RabbitMQ's per-consumer meaning.
        """
        return self.client_properties.get("product") == "py-amqp"

    def client_capability(self, name: str) -> bool:
        capabilities = self.client_properties.get("capabilities")
        return isinstance(capabilities, dict) and bool(capabilities.get(name))

    # -- input -------------------------------------------------------------------

    def data_received(self, data: bytes, budget: int = 1 << 30) -> bool:
        """Take bytes from the client; see :meth:`process`."""
        self.conn.receive_data(data)
        return self.process(budget)

    def process(self, budget: int = 1 << 30) -> bool:
        """Handle at most ``budget`` events; True if more are waiting in the buffer.

        The budget is what keeps one flooding publisher from holding the event loop:
        the glue stops reading from a connection with work left and lets every other
        connection have its turn before this one continues.
        """
        conn = self.conn
        self.published = False
        more = self.blocked
        while not more:
            event = conn.next_event()
            if event is c.NEED_DATA:
                break
            if type(event) is c.ContentReceived:  # the hot path: skip handle's dispatch
                # The publishes that follow on the same channel go as one run.
                run = [event]
                next_publish = conn.next_publish
                while len(run) < budget and (more_event := next_publish(event.channel)):
                    run.append(more_event)
                self._on_content(run)
                budget -= len(run)
            else:
                self.handle(event)
                budget -= 1
            more = budget <= 0 or self.blocked
        if self._vhost is not None:
            # Deliver this batch's publishes in one go (see VirtualHost.dispatch_due).
            self._vhost.dispatch_due()
        self._confirm()
        if self.holding:  # replies of this turn that wait for its writes to be on disk
            durable.sync_holds(self)
        if conn.has_data_to_send or conn.state is not c.ConnState.OPEN:
            # (A publisher without confirms has nothing to say back: no flush to schedule.)
            self.want_flush()
        return more

    def _confirm(self) -> None:
        """Confirm this batch's publishes once what they wrote is on disk.

        The store's barrier covers every write queued before it, and barriers
        complete in order, so confirms go out in publish order (amqp0-9-1 §3.1.4
        publisher confirms; "persisted" for persistent messages, DESIGN.md).
        """
        batch = [
            (channel, channel.confirms) for channel in self.channels.values() if channel.confirms
        ]
        if not batch:
            return
        for channel, _ in batch:
            channel.confirms = []
        store = self.context.node.store
        # Every write of this turn's publishes is at or below ``store.written``; a
        # barrier still pending for this connection keeps confirms in order.
        if store is None or (store.durable >= store.written and not self._syncing):
            self._send_confirms(batch)
            return
        self._syncing += 1
        store.sync(lambda: self._synced(batch))

    def _synced(self, batch: list[tuple[Channel, list[tuple[int, bool]]]]) -> None:
        self._syncing -= 1
        self._send_confirms(batch)
        self.want_flush()

    def _send_confirms(self, batch: list[tuple[Channel, list[tuple[int, bool]]]]) -> None:
        for channel, confirms in batch:
            if self.channels.get(channel.number) is channel:
                channel.send_confirms(confirms)

    def handle(self, event: object) -> None:
        if isinstance(event, c.ContentReceived):
            self._on_content([event])
        elif isinstance(event, c.MethodReceived):
            self._on_method(event)
        elif isinstance(event, c.ChannelOpened):
            self._open_channel(event.channel)
        elif isinstance(event, c.ChannelClosed):
            self._drop_channel(event.channel)
        elif isinstance(event, c.LoginRequested):
            self._login(event)
        elif isinstance(event, c.OpenRequested):
            self._open(event.virtual_host)
        elif isinstance(event, c.UpdateSecretRequested):
            self._update_secret(event.new_secret)
        elif isinstance(event, c.ProtocolError):
            log.info("closing connection %s: %s %s", self.peer, event.reply_code, event.text)
        elif isinstance(event, c.ConnectionClosed | c.BadProtocolHeader | c.ConnectionLost):
            self.connection_lost()

    def _on_content(self, run: list[c.ContentReceived]) -> None:
        """Publishes, in order, all on one channel."""
        channel = self.channels.get(run[0].channel)
        if channel is None:
            return
        self.published = True
        channel.publish_run(run)
        alarms = self.context.alarms
        if alarms and not self.blocked:
            self.blocked = True
            if self.client_capability("connection.blocked"):
                self.conn.send_blocked(alarms.reason)
                self._told_blocked = True

    def unblock(self) -> None:
        """The alarms cleared: the glue reads this connection again."""
        if self._told_blocked:
            self.conn.send_unblocked()
            self._told_blocked = False
        self.blocked = False

    def _on_method(self, event: c.MethodReceived) -> None:
        channel = self.channels.get(event.channel)
        method = event.method
        action = CHANNEL_METHODS.get(type(method))
        if channel is None or action is None:
            self.conn.close(
                ReplyCode.COMMAND_INVALID,
                f"COMMAND_INVALID - unexpected method {method.NAME}",
                method.CLASS_ID,
                method.METHOD_ID,
            )
            return
        try:
            action(channel, method)
        except PigeonError as error:
            self.fail(error, event.channel, method)

    def fail(self, error: PigeonError, channel: int, method: m.Method) -> None:
        """Answer a refused request: close the channel or the connection, per the table."""
        code = next(
            (REPLY_CODES[kind] for kind in type(error).__mro__ if kind in REPLY_CODES),
            ReplyCode.INTERNAL_ERROR,
        )
        text = f"{code.name} - {error.text}"
        if code in CHANNEL_LEVEL:
            self.conn.close_channel(channel, code, text, method.CLASS_ID, method.METHOD_ID)
            self._drop_channel(channel)
        else:
            self.conn.close(code, text, method.CLASS_ID, method.METHOD_ID)
            self.connection_lost()

    # -- output side -------------------------------------------------------------------------

    def output_flushed(self) -> None:
        """What was queued went to the transport: consumers held back by TURN_OUTPUT
        get their next share."""
        if self.output_starved:
            self.output_starved = False
            self._dispatch_channels()

    def pause_output(self) -> None:
        self.output_paused = True

    def resume_output(self) -> None:
        self.output_paused = False
        self._dispatch_channels()

    def _dispatch_channels(self) -> None:
        for channel in list(self.channels.values()):
            channel.dispatch()

    # -- teardown -----------------------------------------------------------------------

    def _open_channel(self, number: int) -> None:
        try:
            self.context.limits.open_channel(self.username)
        except NotAllowed as error:  # the user's max-channels: RabbitMQ closes the connection
            self.conn.close(ReplyCode.NOT_ALLOWED, f"NOT_ALLOWED - {error.text}", 20, 10)
            self.connection_lost()
            return
        self.channels[number] = Channel(self, number)

    def _drop_channel(self, number: int) -> None:
        channel = self.channels.pop(number, None)
        if channel is not None:
            self.context.limits.close_channel(self.username)
            channel.close()

    def connection_lost(self) -> None:
        """The connection is over (closed, failed or dropped): release everything."""
        if self.closed:
            return
        self.closed = True
        if self._attempt is not None:
            self._attempt.cancel()  # its password check is dropped if nobody else waits
            self._attempt = None
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        for number in list(self.channels):
            self._drop_channel(number)
        if self._vhost is not None:
            self._vhost.delete_owned_by(self)
        if self._counted is not None:
            self.context.limits.close(*self._counted)
            self._counted = None
            if self.context.audit is not None:
                self.context.audit.connection_closed(self.peer, self.username)

    def shutdown(self, text: str = "CONNECTION_FORCED - broker shutdown") -> None:
        """Close the connection from the broker's side (320), and let go of its state."""
        if self.conn.state is c.ConnState.OPEN:
            self.conn.close(ReplyCode.CONNECTION_FORCED, text)
        self.connection_lost()

    def describe(self) -> SessionInfo:
        """This connection as the management API lists it (neutral fields + AMQP's own)."""
        settings = self.settings
        return SessionInfo(
            protocol="AMQP 0-9-1",
            peer=self.peer,
            user=self.username,
            vhost=self.vhost_name,
            channels=len(self.channels),
            client_properties=self.client_properties,
            mechanism=self.identity.mechanism if self.identity is not None else "",
            tls=self.tls,
            extras={
                "timeout": settings.heartbeat,
                "frame_max": settings.frame_max,
                "channel_max": settings.channel_max,
            },
        )
