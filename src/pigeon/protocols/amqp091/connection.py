"""Sans-IO AMQP 0-9-1 server connection: bytes in, events out, bytes to send.

The shape of h11: ``receive_data(bytes)`` then ``next_event()`` until
``NEED_DATA``; the adapter answers events by calling methods that queue
output, collected by ``data_to_send()``. No sockets, no clock, no asyncio.

The connection enforces the protocol itself: the handshake order, the
channel lifecycle, content assembly and the frame limits. A client's protocol
violation never raises: the connection queues connection.close with the code
RabbitMQ answers with, goes CLOSING and emits :class:`ProtocolError`.
Call the answering method (``accept_login``, ``accept_open``...) before the next
``next_event()``: the frames after a request are interpreted in its light.

This module is the receiving half and the public face; its parts live in
``events`` (states and events), ``handshake`` (the connection handshake as a
table), ``wire_channel`` (per-channel framing and content assembly),
``publish_cache`` (the publish fast path's decode caches) and ``output`` (the
sending half).
"""

from __future__ import annotations

from collections.abc import Iterator
from struct import error as StructError
from typing import Any

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    encode_method_frame,
)
from pigeon.protocols.amqp091.events import (
    NEED_DATA,
    BadProtocolHeader,
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    ConnectionLost,
    ConnState,
    ContentReceived,
    Event,
    LoginRequested,
    MethodReceived,
    NeedData,
    OpenRequested,
    ProtocolError,
    SecureOkReceived,
    UpdateSecretRequested,
)
from pigeon.protocols.amqp091.frames import FrameReader
from pigeon.protocols.amqp091.handshake import (
    FRAME_MAX_BEFORE_TUNE,
    HANDSHAKE,
    Step,
    negotiate,
    start_frame,
)
from pigeon.protocols.amqp091.output import ConnectionOutput
from pigeon.protocols.amqp091.publish_cache import (
    PROPERTIES,
    PUBLISHES,
    decode_props,
    decode_publish,
)
from pigeon.protocols.amqp091.replies import AMQPError, HardError, ReplyCode, reply_text
from pigeon.protocols.amqp091.wire_channel import (
    CLASS_METHOD,
    Hold,
    WireChannel,
    method_error,
    unexpected_content,
)

# The connection's public face: its events and states are imported from here.
__all__ = [
    "FRAME_MAX_BEFORE_TUNE",
    "NEED_DATA",
    "BadProtocolHeader",
    "ChannelClosed",
    "ChannelOpened",
    "ConnState",
    "ConnectionClosed",
    "ConnectionLost",
    "ContentReceived",
    "Event",
    "Hold",
    "LoginRequested",
    "MethodReceived",
    "OpenRequested",
    "ProtocolError",
    "SecureOkReceived",
    "ServerConnection",
    "UpdateSecretRequested",
    "WireChannel",
]

# Methods only a server sends: a client sending one on a channel gets 503 as
# from RabbitMQ's channel ("unimplemented method"). channel.close-ok is
# handled before this check while our channel.close is outstanding.
_SERVER_ONLY: frozenset[type[m.Method]] = frozenset(
    cls
    for cls in m.METHODS.values()
    if cls.NAME.endswith("-ok") or cls.CLASS_ID == m.ConnectionStart.CLASS_ID
) | {m.BasicDeliver, m.BasicReturn, m.BasicGetEmpty}

# Methods a client sends on an open channel that need nothing of the
# connection but to be handed on (basic.ack, queue.declare...).
_PLAIN: frozenset[type[m.Method]] = frozenset(
    cls
    for cls in m.METHODS.values()
    if cls not in _SERVER_ONLY
    and not cls.HAS_CONTENT
    and cls.CLASS_ID != m.ConnectionStart.CLASS_ID
    and cls is not m.ChannelOpen
    and cls is not m.ChannelClose
)
_CONNECTION_CLOSE = m.ConnectionClose.INDEX
_CONNECTION_CLOSE_OK = m.ConnectionCloseOk.INDEX
_CHANNEL_CLOSE = m.ChannelClose.INDEX
_CHANNEL_CLOSE_OK = m.ChannelCloseOk.INDEX
_CHANNEL_OPEN_OK = m.ChannelOpenOk()
_CLOSE_OK_FRAME = encode_method_frame(0, m.ConnectionCloseOk())


def _index(payload: memoryview) -> int:
    """class id << 16 | method id of a method frame payload, -1 if too short."""
    if len(payload) < 4:
        return -1
    class_id, method_id = CLASS_METHOD.unpack_from(payload)
    return int(class_id << 16 | method_id)


class ServerConnection(ConnectionOutput):
    """One client connection's protocol state, without I/O."""

    def __init__(
        self,
        server_properties: dict[str, Any],
        mechanisms: tuple[str, ...] = ("PLAIN", "AMQPLAIN"),
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 60,
        max_message_size: int = 16 * 1024 * 1024,
    ) -> None:
        super().__init__(channel_max, frame_max, heartbeat)
        self.server_properties = server_properties
        self.mechanisms = mechanisms
        self.max_message_size = max_message_size
        # Tighter limits before authentication (DESIGN.md, "Errors and bad input").
        self._reader = FrameReader(FRAME_MAX_BEFORE_TUNE)
        self._header = b""
        self._eof = False
        self._broken = False  # a framing error: the rest of the stream is noise
        # The client closed and we answered close-ok: it may still be writing what it
        # queued before (the glue reads and discards it rather than reset the socket).
        self.closed_by_peer = False

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` means the peer closed its side."""
        if not data:
            self._eof = True
        elif self.state is ConnState.AWAITING_HEADER:
            self._header += data
        elif not self._broken and self.state is not ConnState.CLOSED:
            self._reader.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA when the input holds no complete one."""
        if self.state is ConnState.OPEN:
            # The hot path: a whole basic.publish in the buffer (see _publish).
            whole = self._reader.peek_publish()
            if whole is not None:
                published = self._publish(*whole)
                if published is not None:
                    return published
        elif self.state is ConnState.AWAITING_HEADER:
            header_event = self._protocol_header()
            if header_event is not None:
                return header_event
        next_frame = self._reader.next_frame
        while self.state is not ConnState.CLOSED:
            try:
                frame = next_frame()
            except HardError as error:  # the framing is lost: ignore the rest
                self._broken = True
                return self._protocol_error(error)
            if frame is None:
                return self._input_exhausted()
            try:
                event = self._frame(*frame)
            except AMQPError as error:
                return self._protocol_error(error)
            if event is not None:
                return event
        return NEED_DATA

    def next_events(self) -> Iterator[Event]:
        """Every event the buffered input holds, lazily (answer each in turn)."""
        while (event := self.next_event()) is not NEED_DATA:
            yield event

    def _input_exhausted(self) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        self.state = ConnState.CLOSED
        return ConnectionLost()

    def _protocol_header(self) -> Event | NeedData | None:
        """Check the protocol header (§4.2.2); None once it was right."""
        received = self._header
        if len(received) < len(PROTOCOL_HEADER):
            if self._eof:
                self.state = ConnState.CLOSED
                return ConnectionLost()
            return NEED_DATA
        self._header = b""
        if received[:8] != PROTOCOL_HEADER:
            # §4.2.2: answer with the header we support, then close the socket.
            self._out.append(PROTOCOL_HEADER)
            self.state = ConnState.CLOSED
            return BadProtocolHeader(received[:8])
        self.state = ConnState.AWAITING_START_OK
        self._out.append(start_frame(self.server_properties, self.mechanisms))
        if len(received) > 8:
            self._reader.feed(received[8:])
        return None

    def _protocol_error(self, error: AMQPError) -> ProtocolError:
        text = reply_text(error.reply_code, error.text)
        self._send_close(error.reply_code, text, error.class_id, error.method_id)
        return ProtocolError(error.reply_code, text)

    # ----------------------------------------------------------------- frames

    def _frame(self, frame_type: int, channel: int, payload: memoryview) -> Event | None:
        state = self.state
        if state is ConnState.OPEN and channel:
            if frame_type == FRAME_METHOD:
                return self._channel_method(channel, payload)
            if frame_type != FRAME_HEARTBEAT:  # a content header or body
                return self._content(frame_type, channel, payload)
        if state is ConnState.CLOSING:
            return self._while_closing(frame_type, channel, payload)
        if frame_type == FRAME_METHOD and channel == 0:
            return self._connection_method(m.decode_method(payload))
        if frame_type == FRAME_HEARTBEAT and channel == 0:
            return None  # activity only; the glue watches the clock
        if frame_type == FRAME_METHOD:  # a channel method before connection.open
            raise HardError(
                ReplyCode.UNEXPECTED_FRAME,
                f"method frame on channel {channel} in state {state.value}",
            )
        raise HardError(ReplyCode.UNEXPECTED_FRAME, f"frame type {frame_type} on channel {channel}")

    def _while_closing(self, frame_type: int, channel: int, payload: memoryview) -> Event | None:
        """§2.2.4: after sending close, discard all but close and close-ok."""
        if frame_type != FRAME_METHOD or channel != 0:
            return None
        index = _index(payload)
        if index == _CONNECTION_CLOSE_OK:
            self.state = ConnState.CLOSED
            return ConnectionClosed(self._close_code, self._close_text, by_peer=False)
        if index == _CONNECTION_CLOSE:
            try:
                close = m.ConnectionClose.decode(payload[4:])
            except (StructError, ValueError):
                close = m.ConnectionClose()  # they are leaving anyway
            return self._peer_close(close)
        return None

    def _peer_close(self, close: m.ConnectionClose) -> ConnectionClosed:
        self._out.append(_CLOSE_OK_FRAME)
        self.state = ConnState.CLOSED
        self.closed_by_peer = True
        return ConnectionClosed(close.reply_code, close.reply_text, by_peer=True)

    def _connection_method(self, method: m.Method) -> Event | None:
        state = self.state
        kind = type(method)
        if isinstance(method, m.ConnectionClose):
            return self._peer_close(method)
        if state is ConnState.OPEN:
            if isinstance(method, m.ConnectionUpdateSecret):
                return UpdateSecretRequested(method.new_secret, method.reason)
            if kind is m.ConnectionBlocked or kind is m.ConnectionUnblocked:
                return None  # only a server sends these; RabbitMQ answers 504
        else:
            step = HANDSHAKE.get(state)
            if step is not None and isinstance(method, step.method):
                return self._handshake(step, method)
        raise HardError(
            ReplyCode.CHANNEL_ERROR,
            f"unexpected method in connection state {state.value}",
            method.CLASS_ID,
            method.METHOD_ID,
        )

    def _handshake(self, step: Step, method: m.Method) -> Event | None:
        """Take one step of the handshake (see handshake.HANDSHAKE)."""
        if isinstance(method, m.ConnectionTuneOk):
            channel_max, frame_max = negotiate(self.channel_max, self.frame_max, method)
            self.channel_max = channel_max
            self.frame_max = self._reader.frame_max = frame_max
            self.heartbeat = method.heartbeat
        self.state = step.next_state
        return None if step.event is None else step.event(method)

    # ---------------------------------------------------------------- channels

    def _channel_method(self, number: int, payload: memoryview) -> Event | None:
        channel = self._channels.get(number)
        if channel is None:
            return self._open_channel(number, m.decode_method(payload))
        if channel.closing:
            return self._while_channel_closing(number, channel, payload)
        if channel.method is not None:
            raise unexpected_content(channel.method, "non content header frame")
        method = m.decode_method(payload)
        kind = type(method)
        if kind in _PLAIN:
            return MethodReceived(number, method)
        if kind is m.ChannelClose:
            assert isinstance(method, m.ChannelClose)
            del self._channels[number]
            self._out.append(encode_method_frame(number, m.ChannelCloseOk()))
            return ChannelClosed(number, method.reply_code, method.reply_text, by_peer=True)
        if kind.HAS_CONTENT and kind not in _SERVER_ONLY:
            channel.method = method
            return None
        if kind in _SERVER_ONLY:
            raise method_error(ReplyCode.COMMAND_INVALID, "unimplemented method", method)
        if kind is m.ChannelOpen:
            raise method_error(ReplyCode.CHANNEL_ERROR, "second 'channel.open' seen", method)
        return MethodReceived(number, method)

    def _open_channel(self, number: int, method: m.Method) -> ChannelOpened:
        # channel_max bounds how many channels are open at once (closing ones count),
        # not their numbers: RabbitMQ accepts channel 65535 under channel_max 2047,
        # and clients rely on it. Checked first, for any method, as RabbitMQ does.
        count = len(self._channels)
        if self.channel_max and count >= self.channel_max:
            raise HardError(
                ReplyCode.NOT_ALLOWED,
                f"number of channels opened ({count}) has reached the negotiated "
                f"channel_max ({self.channel_max})",
            )
        if type(method) is not m.ChannelOpen:
            raise method_error(ReplyCode.CHANNEL_ERROR, "expected 'channel.open'", method)
        self._channels[number] = WireChannel()
        self._out.append(encode_method_frame(number, _CHANNEL_OPEN_OK))
        return ChannelOpened(number)

    def _while_channel_closing(
        self, number: int, channel: WireChannel, payload: memoryview
    ) -> Event | None:
        index = _index(payload)
        if index == _CHANNEL_CLOSE_OK:
            del self._channels[number]
            return ChannelClosed(number, channel.close_code, channel.close_text, by_peer=False)
        if index == _CHANNEL_CLOSE:  # both sides closed at once: answer, keep waiting
            self._out.append(encode_method_frame(number, m.ChannelCloseOk()))
        return None

    # ----------------------------------------------------------------- content

    def next_publish(self, number: int) -> ContentReceived | None:
        """The next event if it is a whole basic.publish on channel ``number`` (what
        :meth:`next_event` would return); otherwise None, and nothing is consumed."""
        if self.state is not ConnState.OPEN:
            return None
        whole = self._reader.peek_publish()
        if whole is None or whole[0] != number:
            return None
        return self._publish(*whole)

    def _publish(
        self, number: int, args: bytes, props: bytes, body: bytes, end: int
    ) -> ContentReceived | None:
        """basic.publish with its header and body in one step, or None to leave
        them to the frame-by-frame path.

        This is the broker's hottest parse, so it does in one call what
        ``_channel_method`` and ``_content`` do for a publish on an idle open
        channel, and returns None for every case where they would do something
        else (an error, a channel that is closing, an oversize message): the
        result is the same either way.
        """
        channel = self._channels.get(number)
        if channel is None or channel.closing or channel.method is not None:
            return None
        method = PUBLISHES.get(args)
        if method is None:
            method = decode_publish(args)
            if method is None:
                return None
        if len(body) > self.max_message_size:
            return None
        known = PROPERTIES.get(props)
        if known is None:
            known = decode_props(props)
            if known is None:
                return None
        self._reader.skip_to(end)
        return ContentReceived(number, method, known[0], body, known[1])

    def _content(self, frame_type: int, number: int, payload: memoryview) -> Event | None:
        channel = self._channels.get(number)
        if channel is None:
            # Content with no method before it, as RabbitMQ answers it.
            raise HardError(
                ReplyCode.UNEXPECTED_FRAME, "expected method frame, got non method frame instead"
            )
        if channel.closing:
            return None
        method = channel.method
        if method is None:
            raise HardError(
                ReplyCode.UNEXPECTED_FRAME, "expected method frame, got non method frame instead"
            )
        if frame_type == FRAME_HEADER:
            if channel.remaining >= 0:
                raise unexpected_content(method, "a second content header", body=True)
            return self._content_header(number, channel, method, payload)
        if channel.remaining < 0:
            raise unexpected_content(method, "non content header frame")
        return channel.add_body(number, method, payload)

    def _content_header(
        self, number: int, channel: WireChannel, method: m.Method, payload: memoryview
    ) -> Event | None:
        body_size, properties = channel.decode_header(method, payload)
        if body_size > self.max_message_size:
            # RabbitMQ closes the channel with 406; we do it before buffering
            # the body, whose frames are then dropped while the channel closes.
            self.close_channel(
                number,
                ReplyCode.PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - message size {body_size} is larger than "
                f"configured max size {self.max_message_size}",
                method.CLASS_ID,
                method.METHOD_ID,
            )
            return None
        return channel.expect_body(number, method, body_size, properties, bytes(payload[12:]))
