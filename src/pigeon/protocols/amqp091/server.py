"""asyncio glue for AMQP 0-9-1: sockets in and out, timers; no protocol logic.

``data_received`` feeds the handler; output is collected and written once per
loop iteration; ``pause_writing``/``resume_writing`` stop and restart
deliveries when a client reads too slowly; heartbeats are sent when the
connection is idle and a silent peer is dropped after two intervals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from ssl import SSLContext
from typing import cast

from pigeon.protocols.amqp091.adapter import AMQPHandler, BrokerContext
from pigeon.protocols.amqp091.connection import ConnState
from pigeon.protocols.amqp091.replies import ReplyCode

log = logging.getLogger("pigeon.amqp")

HANDSHAKE_TIMEOUT = 10.0
# Events (a publish, an ack, ...) one connection may have handled per turn of the event
# loop. Past it, the connection stops being read until every other connection had its
# turn: without it a flooding publisher (whose socket libuv reads up to 32 times per
# readiness) starves consumers (docs/benchmarks.md).
EVENT_BUDGET = 128
# Flow control: a connection that publishes while this many writes wait for the disk
# is not read again until the store's next commit (RabbitMQ's credit flow, in effect).
# Without it a fast publisher piles bodies up in memory faster than the disk takes them.
# Likewise while queues are over their memory budget (``paging_memory``) and the pager
# has writes outstanding: a publisher is read again once the pager's next write is done,
# so a backlog grows no faster than it goes to disk, long before a memory alarm.
STORE_BACKLOG = 20_000
CLOSE_OK_TIMEOUT = 3.0
# After close-ok to a client's connection.close, how long its remaining input is read
# and discarded before the socket is closed anyway (RabbitMQ waits up to 30 s).
LINGER_TIMEOUT = 3.0
# Connections the kernel queues for accept(): asyncio's default (100) drops the SYNs of a
# burst (a thousand clients at once), and a dropped SYN costs its client a 1-s retransmit.
LISTEN_BACKLOG = 1024
WRITE_BUFFER_HIGH = 4 * 1024 * 1024


def _is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return True  # a Unix socket is local
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


class AMQPProtocol(asyncio.Protocol):
    def __init__(self, context: BrokerContext, loop: asyncio.AbstractEventLoop,
                 connections: set[AMQPProtocol]) -> None:
        self.context = context
        self.loop = loop
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.handler: AMQPHandler | None = None
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_received = 0.0
        self._wrote_since_tick = False
        self._closing_since: float | None = None
        self._reading_paused = False
        self._admitted = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        if not self.context.limits.admit():
            log.warning("connection refused: the broker's connection limit is reached")
            transport.abort()
            return
        self._admitted = True
        self.context.node.stats.connections_opened += 1
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small messages must not wait for Nagle's algorithm (DESIGN.md, "Hot path").
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        peername = transport.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        self.handler = AMQPHandler(self.context, self.loop, peer=peer,
                                   loopback=_is_loopback(peername),
                                   want_flush=self._want_flush,
                                   certificate=transport.get_extra_info("peercert"),
                                   tls=transport.get_extra_info("ssl_object") is not None)
        self.connections.add(self)
        self._last_received = self.loop.time()
        self._timer = self.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)
        log.debug("connection from %s", peer)

    def data_received(self, data: bytes) -> None:
        handler = self.handler
        assert handler is not None
        self._last_received = self.loop.time()
        if handler.conn.state is ConnState.CLOSED:
            return  # lingering after close-ok: the rest is discarded unread
        handler.conn.receive_data(data)
        self._process()

    def _process(self) -> None:
        handler = self.handler
        assert handler is not None
        was_open = handler.conn.state is ConnState.OPEN
        more = False
        try:
            more = handler.process(EVENT_BUDGET)
        except Exception:
            # Anything but a protocol error escaping the handler is a bug in Pigeon.
            log.exception("internal error on connection %s", handler.peer)
            handler.conn.close(ReplyCode.INTERNAL_ERROR, "INTERNAL_ERROR")
            handler.connection_lost()
            self._want_flush()
        if not was_open and handler.conn.state is ConnState.OPEN:
            self._start_heartbeats()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        wait = self._flow() if handler.published else None
        if wait is not None:
            if not self._reading_paused:
                self._reading_paused = True
                transport.pause_reading()
            wait(self._continue)
        elif more:
            if not self._reading_paused:
                self._reading_paused = True
                transport.pause_reading()
            if not handler.blocked:  # blocked: wait for alarms_changed instead
                self.loop.call_soon(self._continue)
        elif self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _flow(self) -> Callable[[Callable[[], object]], None] | None:
        """What a publisher waits for before it is read again (credit flow), if anything:
        the store's next commit, or the pager's next write."""
        store = self.context.node.store
        if store is None:
            return None
        if store.queued_writes > STORE_BACKLOG:
            return store.sync
        pager = store.pager
        if pager is not None and pager.backlog and pager.memory.over:
            pager.memory.flow_pauses += 1
            return pager.when_written
        return None

    def alarms_changed(self, active: bool) -> None:
        handler = self.handler
        if not active and handler is not None and handler.blocked:
            handler.unblock()
            self._want_flush()
            self._process()

    def _continue(self) -> None:
        if self.handler is not None and not self.handler.closed:
            self._process()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
        if self._admitted:
            self._admitted = False
            self.context.limits.leave()
            self.context.node.stats.connections_closed += 1
        for timer in (self._timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._linger_timer = None
        if self.handler is not None:
            self.handler.connection_lost()

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_output()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_output()

    # -- output ----------------------------------------------------------------------

    def _want_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport, handler = self.transport, self.handler
        if transport is None or handler is None or transport.is_closing():
            return
        data = handler.conn.data_to_send()
        if data:
            transport.write(data)
            self._wrote_since_tick = True
            handler.output_flushed()
        state = handler.conn.state
        if state is ConnState.CLOSED:
            if handler.conn.closed_by_peer:
                self._linger(transport)
            else:
                transport.close()
        elif state is ConnState.CLOSING and self._closing_since is None:
            self._closing_since = self.loop.time()
            self.loop.call_later(CLOSE_OK_TIMEOUT, self._close_ok_timeout)

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close-ok went to a client that closed: wait for it to close its side.

        A publisher may send connection.close while its earlier writes are still on
        the way (Node's amqplib queues the close ahead of a full channel's buffered
        publishes). Closing the socket at once would reset it under the client's
        writes, and the client would never see close-ok; so, as RabbitMQ does, what
        still arrives is read and discarded until the client closes (eof_received
        then closes ours) or LINGER_TIMEOUT passes.
        """
        if self._linger_timer is not None:
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_TIMEOUT, self._close_ok_timeout)

    def _close_ok_timeout(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- timers ------------------------------------------------------------------------

    def _handshake_timeout(self) -> None:
        self._timer = None
        handler = self.handler
        if handler is not None and handler.conn.state is not ConnState.OPEN:
            log.info("handshake timeout from %s", handler.peer)
            if self.transport is not None:
                self.transport.abort()

    def _start_heartbeats(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self.handler is not None
        interval = self.handler.conn.heartbeat
        if interval:
            self._schedule_tick(interval / 2)

    def _schedule_tick(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._tick, delay)

    def _tick(self, delay: float) -> None:
        handler, transport = self.handler, self.transport
        if handler is None or transport is None or transport.is_closing():
            return
        silent = self.loop.time() - self._last_received
        if silent > 4 * delay and not handler.blocked:  # two intervals without a frame
            # (A blocked connection is not read, so its silence proves nothing.)
            log.info("missed heartbeats from %s, closing", handler.peer)
            transport.abort()
            return
        if not self._wrote_since_tick:
            handler.conn.send_heartbeat()
            self._want_flush()
        self._wrote_since_tick = False
        self._schedule_tick(delay)

    def shutdown(self, text: str = "CONNECTION_FORCED - broker shutdown") -> None:
        """Close from the broker's side: send connection.close (320) and flush it out."""
        handler, transport = self.handler, self.transport
        if handler is None or transport is None or transport.is_closing():
            return
        handler.shutdown(text)
        data = handler.conn.data_to_send()
        if data:
            transport.write(data)
        transport.close()


class AMQPListener:
    """A bound AMQP listener and the connections it accepted."""

    def __init__(self, server: asyncio.Server, connections: set[AMQPProtocol],
                 context: BrokerContext) -> None:
        self.server = server
        self.connections = connections
        self.context = context
        context.alarms.listeners.append(self._alarms_changed)

    def _alarms_changed(self, active: bool) -> None:
        for protocol in list(self.connections):
            protocol.alarms_changed(active)

    @property
    def port(self) -> int:
        sock = self.server.sockets[0]
        return int(sock.getsockname()[1])

    def close_vhost(self, vhost: str) -> None:
        """A vhost was deleted: its connections are closed, as RabbitMQ does (320)."""
        for protocol in list(self.connections):
            handler = protocol.handler
            if handler is not None and handler.vhost_name == vhost:
                protocol.shutdown(f"CONNECTION_FORCED - vhost '{vhost}' is deleted")

    async def close(self) -> None:
        if self._alarms_changed in self.context.alarms.listeners:
            self.context.alarms.listeners.remove(self._alarms_changed)
        self.server.close()
        protocols = list(self.connections)
        for protocol in protocols:
            protocol.shutdown()
        if protocols:
            # Let the transports finish closing, so no socket outlives the broker.
            await asyncio.wait([p.closed for p in protocols], timeout=CLOSE_OK_TIMEOUT)
        await self.server.wait_closed()


async def start_listener(context: BrokerContext, host: str, port: int, *,
                         ssl: SSLContext | None = None) -> AMQPListener:
    loop = asyncio.get_running_loop()
    connections: set[AMQPProtocol] = set()
    def factory() -> AMQPProtocol:
        return AMQPProtocol(context, loop, connections)
    server = await loop.create_server(
        factory, host, port, reuse_address=True, ssl=ssl, backlog=LISTEN_BACKLOG,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl is not None else None)
    return AMQPListener(server, connections, context)
