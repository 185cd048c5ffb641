"""The asyncio glue every protocol shares: sockets in and out, turns, timers.

One :class:`Connection` (an ``asyncio.Protocol``) per client socket drives one
sans-IO :class:`~pigeon.transport.session.Session`:

- ``data_received`` feeds the session and runs one turn of at most
  ``Tuning.budget`` events; a session with work left is not read again until
  every other connection had its turn (``pause_reading``, then ``call_soon``).
- Output is collected and written once per loop iteration, whatever number of
  frames the turn produced.
- Reading pauses too while the session waits for something (flow control) or
  is blocked; ``pause_writing``/``resume_writing`` tell the session to stop and
  restart its output when the peer reads too slowly.
- Timers: the handshake timeout, the keepalive the open session asks for, how
  long a close waits for the peer's answer, and how long a closed peer's
  remaining input is discarded.
- :meth:`Connection.shutdown` closes from the broker's side.

No protocol logic lives here, and nothing here knows a protocol.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

from pigeon.core.ports import Scheduler, TimerHandle
from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.session import Keepalive, Peer, Phase, Session, SessionFactory

log = logging.getLogger("pigeon.transport")

S = TypeVar("S", bound=Session)


@dataclass(frozen=True, slots=True)
class Tuning:
    # Events (a publish, an ack, ...) one connection may have handled per turn of the event
    # loop. Past it, the connection stops being read until every other connection had its
    # turn: without it a flooding publisher (whose socket libuv reads up to 32 times per
    # readiness) starves consumers (docs/benchmarks.md).
    budget: int = 128
    handshake_timeout: float = 10.0
    # How long a close we started waits for the peer's answer.
    close_timeout: float = 3.0
    # After answering a peer's close, how long its remaining input is read and discarded
    # before the socket is closed anyway (RabbitMQ waits up to 30 s).
    linger_timeout: float = 3.0
    write_buffer_high: int = 4 * 1024 * 1024


class Counts(Protocol):
    """Where accepted and closed connections are counted (the core's ``NodeStats``)."""

    connections_opened: int
    connections_closed: int


@dataclass(eq=False)
class Hub(Generic[S]):
    """What the connections of one listener share."""

    factory: SessionFactory[S]
    clock: Scheduler
    limits: ConnectionLimits
    counts: Counts
    tuning: Tuning = Tuning()
    connections: set[Connection[S]] = field(default_factory=set)


def _is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return True  # a Unix socket is local
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


def _peer(transport: asyncio.Transport) -> Peer:
    name = transport.get_extra_info("peername")
    address = f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)
    local = transport.get_extra_info("sockname")
    return Peer(
        address,
        _is_loopback(name),
        tls=transport.get_extra_info("ssl_object") is not None,
        certificate=transport.get_extra_info("peercert"),
        local=f"{local[0]}:{local[1]}" if isinstance(local, tuple) else str(local or ""),
    )


class Connection(asyncio.Protocol, Generic[S]):
    """One client socket and the session that speaks its protocol."""

    def __init__(self, hub: Hub[S]) -> None:
        self.hub = hub
        self.clock = hub.clock
        self.budget = hub.tuning.budget
        self.transport: asyncio.Transport | None = None
        self.session: S | None = None
        self.peer: Peer | None = None
        self._flush_scheduled = False
        self._timer: TimerHandle | None = None  # the handshake timeout, then keepalive ticks
        self._keepalive: Keepalive | None = None
        self._close_timer: TimerHandle | None = None
        self._linger_timer: TimerHandle | None = None
        self._last_received = 0.0
        self._wrote_since_tick = False
        self._open = False
        self._reading_paused = False
        self._admitted = False
        self._lost = False
        self._closed: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        hub = self.hub
        if not hub.limits.admit():
            log.warning("connection refused: the broker's connection limit is reached")
            transport.abort()
            return
        self._admitted = True
        hub.counts.connections_opened += 1
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small messages must not wait for Nagle's algorithm (DESIGN.md, "Hot path").
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=hub.tuning.write_buffer_high)
        self.peer = peer = _peer(transport)
        self.session = hub.factory(peer, self.want_flush)
        hub.connections.add(self)
        self._last_received = self.clock.time()
        self._timer = self.clock.call_later(hub.tuning.handshake_timeout, self._handshake_timeout)
        log.debug("connection from %s", peer.address)

    def data_received(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        self._last_received = self.clock.time()
        phase = session.phase
        if phase is Phase.CLOSED or phase is Phase.LINGER:
            return  # after the close: the rest is discarded unread
        session.receive_data(data)
        self._process(session)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        hub = self.hub
        hub.connections.discard(self)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._admitted:
            self._admitted = False
            hub.limits.leave()
            hub.counts.connections_closed += 1
        for timer in (self._timer, self._close_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._close_timer = self._linger_timer = None
        if self.session is not None:
            self.session.connection_lost()

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.pause_output()

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.resume_output()

    # -- turns -----------------------------------------------------------------------

    def _process(self, session: S) -> None:
        more = False
        try:
            more = session.process(self.budget)
        except Exception:
            # Anything but a protocol error escaping the session is a bug in Pigeon.
            log.exception("internal error on connection %s", self._address())
            session.internal_error()
            self.want_flush()
        if not self._open and session.phase is Phase.OPEN:
            self._opened(session)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        wait = session.throttle()
        if wait is not None:
            self._pause_reading(transport)
            wait(self.resume)
        elif more:
            self._pause_reading(transport)
            if not session.blocked:  # blocked: the session's owner calls resume()
                self.clock.call_soon(self.resume)
        elif self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _pause_reading(self, transport: asyncio.Transport) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()

    def resume(self) -> None:
        """Run the session's next turn: after its budget ran out, after what it waited
        for happened, or when it is no longer blocked."""
        if self.session is not None and not self._lost:
            self._process(self.session)

    # -- output ----------------------------------------------------------------------

    def want_flush(self) -> None:
        """Write the session's output at the end of this loop iteration (once)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.clock.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport, session = self.transport, self.session
        if transport is None or session is None or transport.is_closing():
            return
        data = session.data_to_send()
        if data:
            transport.write(data)
            self._wrote_since_tick = True
            session.output_flushed()
        phase = session.phase
        if phase is Phase.OPEN:
            return
        if phase is Phase.CLOSED:
            transport.close()
        elif phase is Phase.LINGER:
            self._linger(transport)
        elif phase is Phase.CLOSING and self._close_timer is None:
            self._close_timer = self.clock.call_later(
                self.hub.tuning.close_timeout, self._close_timeout
            )

    def _linger(self, transport: asyncio.Transport) -> None:
        """The session answered the peer's close: wait for the peer to close its side.

        A publisher may close while its earlier writes are still on the way (Node's
        amqplib queues the close ahead of a full channel's buffered publishes). Closing
        the socket at once would reset it under the peer's writes, and it would never
        read our answer; so, as RabbitMQ does, what still arrives is read and discarded
        until the peer closes (eof_received then closes ours) or the linger timeout.
        """
        if self._linger_timer is not None:
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._linger_timer = self.clock.call_later(
            self.hub.tuning.linger_timeout, self._close_timeout
        )

    def _close_timeout(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- timers ----------------------------------------------------------------------

    def _handshake_timeout(self) -> None:
        self._timer = None
        session = self.session
        if session is not None and session.phase is not Phase.OPEN:
            log.info("handshake timeout from %s", self._address())
            if self.transport is not None:
                self.transport.abort()

    def _opened(self, session: S) -> None:
        self._open = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._keepalive = session.keepalive()
        if self._keepalive is not None:
            self._timer = self.clock.call_later(self._keepalive.tick, self._tick)

    def _tick(self) -> None:
        session, transport, keepalive = self.session, self.transport, self._keepalive
        if session is None or transport is None or keepalive is None or transport.is_closing():
            return
        silent = self.clock.time() - self._last_received
        if silent > keepalive.timeout and not session.blocked:
            # (A blocked session is not read, so its silence proves nothing.)
            log.info("missed heartbeats from %s, closing", self._address())
            if keepalive.expired is None:
                transport.abort()
            else:
                keepalive.expired()
                self.close_now()
            return
        if keepalive.send and not self._wrote_since_tick:
            session.send_heartbeat()
            self.want_flush()
        self._wrote_since_tick = False
        self._timer = self.clock.call_later(keepalive.tick, self._tick)

    # -- closing from our side -------------------------------------------------------

    def close_now(self) -> None:
        """Write what the session has queued, then close the socket."""
        transport, session = self.transport, self.session
        if transport is None or session is None or transport.is_closing():
            return
        data = session.data_to_send()
        if data:
            transport.write(data)
        transport.close()

    def shutdown(self) -> None:
        """The broker closes: the session says so to the peer, and the socket closes."""
        transport, session = self.transport, self.session
        if transport is None or session is None or transport.is_closing():
            return
        session.shutdown()
        self.close_now()

    def wait_closed(self) -> asyncio.Future[None]:
        """Done once the socket is gone (``connection_lost``)."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            if self._lost:
                self._closed.set_result(None)
        return self._closed

    def _address(self) -> str:
        return self.peer.address if self.peer is not None else "?"
