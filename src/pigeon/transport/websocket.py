"""Any byte-stream protocol over a WebSocket (RFC 6455), as a sans-IO session.

:class:`WebSocketSession` is a :class:`~pigeon.transport.session.Session` that
wraps another: it answers the HTTP upgrade (:mod:`.websocket_upgrade`), then
unwraps the client's binary frames into the inner session's input and wraps the
inner session's output into binary frames (:mod:`.websocket_frames`). Frame
boundaries mean nothing to the inner protocol ([MQTT-6.0.0-2]: a frame may hold
several packets or part of one), so payloads stream through as they arrive,
unmasked, without waiting for a whole frame or message.

The inner session is made only once the upgrade is accepted, with a
:class:`~pigeon.transport.session.Peer` whose ``websocket`` field holds the
request (path, Origin, subprotocol). Its phase, keepalive, flow control and
shutdown pass through; the WebSocket's own close handshake (§7) wraps its end:

- the inner session closes: its last output, then a close frame (1000), then
  the peer's answer is awaited (CLOSING) before the socket closes;
- the peer sends a close frame: it is answered with the same code and the socket
  closes (§7.1.1: the server closes first); data before it still reaches the
  inner session (an MQTT DISCONNECT followed by the close);
- the peer breaks the protocol: a close frame with the code of the fault (1002:
  unmasked frame, reserved bits, bad fragment order; 1003: a text frame, as
  RabbitMQ's Web MQTT answers; 1009: a frame or message over the limit, refused
  from its header, before any of its payload is read), then its answer is awaited;
- the broker shuts down: the inner session's goodbye, then 1001.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from ssl import SSLContext
from typing import Generic, TypeVar

from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.glue import Counts, Tuning
from pigeon.transport.listener import Listener, listen
from pigeon.transport.session import Keepalive, Peer, Phase, Session, SessionFactory, Waiter
from pigeon.transport.websocket_frames import (
    CloseCode,
    FrameError,
    Header,
    Opcode,
    close_frame,
    control_frame,
    frame_header,
    parse_close,
    parse_header,
    unmask,
)
from pigeon.transport.websocket_upgrade import Refusal, read_request

log = logging.getLogger("pigeon.transport.websocket")

S = TypeVar("S", bound=Session)

WEB_MQTT_PORT = 15675  # RabbitMQ's Web MQTT plugin


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    path: str = "/ws"
    # Subprotocols the server speaks, in its order of preference; a client that offers
    # none of them is refused (400). Empty: none is asked for or named.
    subprotocols: tuple[str, ...] = ()
    max_request_size: int = 16 * 1024  # the HTTP request head; past it: 431
    # Payloads stream through to the inner session, which limits its own packets; these
    # bound what a frame or a fragmented message may announce (1009 past them).
    max_frame_size: int = 256 * 1024 * 1024
    max_message_size: int = 256 * 1024 * 1024


_CLOSING_PHASES = (Phase.CLOSED, Phase.LINGER)


class WebSocketSession(Generic[S]):
    """One WebSocket connection carrying one inner session (see the module's notes)."""

    def __init__(
        self,
        peer: Peer,
        want_flush: Callable[[], None],
        factory: SessionFactory[S],
        settings: WebSocketSettings,
    ) -> None:
        self.peer = peer
        self.settings = settings
        self._want_flush = want_flush
        self._factory = factory
        self._inner: S | None = None
        self._buffer = bytearray()
        self._out = bytearray()
        # The payload of the last ping not answered yet: one pong answers them all
        # (§5.5.3), and none goes out while the peer does not read, so a ping flood
        # costs no memory.
        self._pong: bytes | None = None
        self._output_paused = False
        self._refused = False
        self._scanned = 0  # of the request head, searched for its end already
        # The payload still to come of the data frame being read, its mask, and how far
        # into its payload we are (the mask rotates with it).
        self._remaining = 0
        self._mask = b""
        self._offset = 0
        self._in_message = False  # a fragmented message is under way
        self._message_size = 0
        self._skip = 0  # bytes of a refused frame still to step over
        self._lost_track = False  # the input cannot be followed any more: discard it
        self._close_sent = False
        self._close_received = False
        # Frames this short, whole in the buffer, take the quick way through _consume.
        self._short_frame = min(125, settings.max_frame_size, settings.max_message_size)

    @property
    def inner(self) -> S | None:
        """The session the WebSocket carries; None until the upgrade is accepted."""
        return self._inner

    # -- Session: phase and flow control pass through ---------------------------------

    @property
    def phase(self) -> Phase:
        inner = self._inner
        if inner is None:
            return Phase.LINGER if self._refused else Phase.HANDSHAKE
        if self._close_sent:
            return Phase.CLOSED if self._close_received else Phase.CLOSING
        phase = inner.phase
        # The inner session is done: its close frame goes with the next output.
        return Phase.CLOSING if phase in _CLOSING_PHASES else phase

    @property
    def blocked(self) -> bool:
        return self._inner is not None and self._inner.blocked

    def throttle(self) -> Waiter | None:
        if self._inner is None or self._close_sent:
            return None
        return self._inner.throttle()

    def output_flushed(self) -> None:
        if self._inner is not None:
            self._inner.output_flushed()

    def pause_output(self) -> None:
        self._output_paused = True
        if self._inner is not None:
            self._inner.pause_output()

    def resume_output(self) -> None:
        self._output_paused = False
        if self._pong is not None:
            self._want_flush()
        if self._inner is not None:
            self._inner.resume_output()

    def keepalive(self) -> Keepalive | None:
        return self._inner.keepalive() if self._inner is not None else None

    def send_heartbeat(self) -> None:
        if self._inner is not None and not self._close_sent:
            self._inner.send_heartbeat()

    def internal_error(self) -> None:
        if self._inner is None:
            self._refuse(Refusal(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"))
            return
        self._inner.internal_error()
        self._send_close(CloseCode.INTERNAL_ERROR, "internal error")

    def shutdown(self) -> None:
        if self._inner is None:
            self._refuse(Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down"))
            return
        self._inner.shutdown()
        self._send_close(CloseCode.GOING_AWAY, "server shutdown")

    def connection_lost(self) -> None:
        if self._inner is not None:
            self._inner.connection_lost()

    # -- input ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def process(self, budget: int) -> bool:
        if self._inner is None and (self._refused or not self._upgrade()):
            return False
        inner = self._inner
        assert inner is not None
        if self._buffer:
            payload = self._read_frames()
            if payload:
                inner.receive_data(payload)
        # Also after a close: what came before it is the inner session's to handle.
        return inner.process(budget)

    def _upgrade(self) -> bool:
        """Answer the HTTP request once its head is whole; True if it was accepted."""
        end = self._buffer.find(b"\r\n\r\n", self._scanned)
        self._scanned = max(0, len(self._buffer) - 3)  # a request sent byte by byte
        limit = self.settings.max_request_size
        if end < 0 or end + 4 > limit:
            if len(self._buffer) >= limit:
                self._refuse(
                    Refusal(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request too large")
                )
            return False
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        settings = self.settings
        try:
            accepted = read_request(head, settings.path, settings.subprotocols)
        except Refusal as refusal:
            self._refuse(refusal)
            return False
        self._out += accepted.response
        self._want_flush()
        peer = dataclasses.replace(self.peer, websocket=accepted.request)
        self._inner = self._factory(peer, self._want_flush)
        return True

    def _refuse(self, refusal: Refusal) -> None:
        log.info(
            "WebSocket upgrade from %s refused: %d %s",
            self.peer.address,
            refusal.status.value,
            refusal.reason,
        )
        self._refused = True
        self._buffer.clear()
        self._out += refusal.response()
        self._want_flush()

    def _read_frames(self) -> bytes:
        """Parse what the buffer holds; the data payloads in it, unmasked and joined."""
        buffer = self._buffer
        pieces: list[bytes] = []
        if not self._lost_track:
            with memoryview(buffer) as view:
                position = self._consume(view, pieces)
        if self._lost_track:
            buffer.clear()
        else:
            del buffer[:position]
        return b"".join(pieces)

    def _consume(self, view: memoryview, pieces: list[bytes]) -> int:
        """Read frames from ``view``; returns how much of it was used."""
        position, end = 0, len(view)
        short = self._short_frame
        while position < end and not self._lost_track:
            # The common case first: a whole, final, masked binary frame of < 126 bytes
            # outside any fragmented message (an MQTT packet from a browser, say).
            # (Not while a frame's payload is being read: a payload byte may be 0x82.)
            if (
                view[position] == 0x82
                and not self._remaining
                and not self._skip
                and end - position > 1
                and not self._in_message
            ):
                size = view[position + 1] - 0x80
                if 0 <= size <= short and position + 6 + size <= end and not self._close_sent:
                    mask = bytes(view[position + 2 : position + 6])
                    pieces.append(unmask(view[position + 6 : position + 6 + size], mask))
                    position += 6 + size
                    continue
            if self._skip:
                step = min(self._skip, end - position)
                self._skip -= step
                position += step
            elif self._remaining:
                take = min(self._remaining, end - position)
                pieces.append(unmask(view[position : position + take], self._mask, self._offset))
                self._remaining -= take
                self._offset += take
                position += take
            else:
                try:
                    header = parse_header(view, position)
                    used = 0 if header is None else self._frame(header, view, position)
                except FrameError as error:
                    self._fail(error)  # and step over the bad frame, to find the peer's close
                    continue
                if not used:
                    break  # the frame is not whole yet
                position += used
        return position

    def _frame(self, header: Header, view: memoryview, position: int) -> int:
        """Act on a frame whose header is read; the bytes it used (0: wait for more)."""
        if header.opcode >= Opcode.CLOSE:
            total = header.size + header.length
            if len(view) - position < total:
                return 0  # control frames are short (125 bytes at most): read them whole
            payload = unmask(view[position + header.size : position + total], header.mask)
            try:
                self._control(header.opcode, payload)
            except FrameError as error:
                raise FrameError(error.code, error.reason, total) from None
            return total
        if self._close_sent:
            self._skip = header.length  # data after our close is read and dropped
            return header.size
        self._check_data(header)
        self._in_message = not header.fin
        self._message_size = header.length + (
            self._message_size if header.opcode == Opcode.CONTINUATION else 0
        )
        self._remaining, self._mask, self._offset = header.length, header.mask, 0
        return header.size

    def _check_data(self, header: Header) -> None:
        opcode, skip = header.opcode, header.size + header.length
        if opcode == Opcode.CONTINUATION and not self._in_message:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "continuation outside a message", skip)
        if opcode != Opcode.CONTINUATION and self._in_message:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one", skip)
        if opcode == Opcode.TEXT:
            # [MQTT-6.0.0-1]: binary frames only; RabbitMQ closes with 1003 on others.
            raise FrameError(CloseCode.UNSUPPORTED_DATA, "text frames are not accepted", skip)
        settings = self.settings
        if header.length > settings.max_frame_size:
            raise FrameError(CloseCode.TOO_BIG, "frame too big", skip)
        so_far = self._message_size if opcode == Opcode.CONTINUATION else 0
        if so_far + header.length > settings.max_message_size:
            raise FrameError(CloseCode.TOO_BIG, "message too big", skip)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == Opcode.PING:
            if not self._close_sent:  # §5.5.1: nothing after our close
                self._pong = payload
                if not self._output_paused:
                    self._want_flush()
        elif opcode == Opcode.CLOSE:
            self._close_received = True
            self._lost_track = True  # §5.5.1: nothing may follow a close
            code, _reason = parse_close(payload)  # a bad one is answered with its fault
            # §5.5.1: answer with the code received (none if none was given).
            self._send_close(code, "")
            self._want_flush()  # CLOSED now: the glue closes the socket at the flush

    def _fail(self, error: FrameError) -> None:
        """The peer broke the protocol: close with the fault's code (§7.1.7)."""
        if self._close_sent:
            self._lost_track = True
            return
        log.info("WebSocket from %s failed: %s (%d)", self.peer.address, error.reason, error.code)
        self._send_close(error.code, error.reason)
        if error.skip is None:
            self._lost_track = True
        else:
            self._skip = error.skip

    # -- output -----------------------------------------------------------------------

    def _send_close(self, code: int | None, reason: str) -> None:
        """The inner session's last output, then a close frame; nothing after it."""
        if self._close_sent:
            return
        inner = self._inner
        if inner is not None:
            data = inner.data_to_send()
            if data:
                self._out += frame_header(Opcode.BINARY, len(data))
                self._out += data
        self._out += close_frame(code, reason)
        self._close_sent = True
        self._want_flush()

    def data_to_send(self) -> bytes:
        parts: list[bytes] = []
        if self._out:
            parts.append(bytes(self._out))
            self._out.clear()
        if self._pong is not None and not self._output_paused and not self._close_sent:
            parts.append(control_frame(Opcode.PONG, self._pong))
            self._pong = None
        inner = self._inner
        if inner is None or self._close_sent:
            if inner is not None:
                inner.data_to_send()  # after the close frame nothing is sent (§5.5.1)
            return b"".join(parts)
        data = inner.data_to_send()
        if data:
            parts.append(frame_header(Opcode.BINARY, len(data)))
            parts.append(data)
        if inner.phase in _CLOSING_PHASES:
            self._send_close(CloseCode.NORMAL, "")
            parts.append(bytes(self._out))
            self._out.clear()
        return parts[0] if len(parts) == 1 else b"".join(parts)


def websocket_factory(
    factory: SessionFactory[S], settings: WebSocketSettings
) -> SessionFactory[WebSocketSession[S]]:
    """Sessions of ``factory`` carried over WebSocket: for :func:`.listener.listen`."""

    def make(peer: Peer, want_flush: Callable[[], None]) -> WebSocketSession[S]:
        return WebSocketSession(peer, want_flush, factory, settings)

    return make


async def listen_websocket(
    factory: SessionFactory[S],
    host: str,
    port: int,
    *,
    settings: WebSocketSettings,
    limits: ConnectionLimits,
    counts: Counts,
    ssl: SSLContext | None = None,
    tuning: Tuning | None = None,
) -> Listener[WebSocketSession[S]]:
    """Bind ``host:port`` (0: any free port) for WebSocket (``ssl``: over TLS, wss://);
    each accepted upgrade carries a session of ``factory``, reached through
    :attr:`WebSocketSession.inner`."""
    return await listen(
        websocket_factory(factory, settings),
        host,
        port,
        limits=limits,
        counts=counts,
        ssl=ssl,
        tuning=tuning,
    )
