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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from struct import Struct
from struct import error as StructError
from typing import Any, Literal, NamedTuple

from pigeon.core.message import Properties
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    decode_encoded_properties,
    decode_properties,
    encode_content_frames,
    encode_deliver,
    encode_method_frame,
)
from pigeon.protocols.amqp091.frames import FrameReader
from pigeon.protocols.amqp091.replies import AMQPError, HardError, ReplyCode, reply_text

FRAME_MAX_BEFORE_TUNE = 8192


class ConnState(Enum):
    AWAITING_HEADER = "awaiting_header"
    AWAITING_START_OK = "starting"
    SECURING = "securing"  # start-ok received; the adapter authenticates
    AWAITING_TUNE_OK = "tuning"
    AWAITING_OPEN = "opening"
    OPEN = "running"
    CLOSING = "closing"  # we sent connection.close; waiting for close-ok
    CLOSED = "closed"


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[_Sentinel.NEED_DATA] = _Sentinel.NEED_DATA


# --------------------------------------------------------------------------- events


@dataclass(slots=True, frozen=True)
class BadProtocolHeader:
    """The client did not open with AMQP 0-9-1's header; we answered ours (§4.2.2)."""

    received: bytes


@dataclass(slots=True, frozen=True)
class LoginRequested:
    """connection.start-ok: answer with accept_login(), refuse_login() or send_secure()."""

    mechanism: str
    response: bytes
    client_properties: dict[str, Any]
    locale: str


@dataclass(slots=True, frozen=True)
class SecureOkReceived:
    response: bytes


@dataclass(slots=True, frozen=True)
class OpenRequested:
    """connection.open: answer with accept_open() or close()."""

    virtual_host: str


@dataclass(slots=True, frozen=True)
class UpdateSecretRequested:
    """connection.update-secret: answer with send_method(0, ConnectionUpdateSecretOk())."""

    new_secret: bytes
    reason: str


@dataclass(slots=True, frozen=True)
class ChannelOpened:
    channel: int


@dataclass(slots=True, frozen=True)
class ChannelClosed:
    """The channel is gone: closed by the client, or our close_channel() completed."""

    channel: int
    reply_code: int
    reply_text: str
    by_peer: bool


# The two per-message events are NamedTuples: building one costs a fraction of
# a frozen dataclass, and there is one per publish and per ack.
class MethodReceived(NamedTuple):
    channel: int
    method: m.Method


class ContentReceived(NamedTuple):
    """A content-bearing method with its properties and body, assembled.

    ``encoded_props`` is the wire form of ``properties`` (flags and list) to
    reuse when the message is delivered.
    """

    channel: int
    method: m.Method
    properties: Properties
    body: bytes
    encoded_props: bytes


@dataclass(slots=True, frozen=True)
class ConnectionClosed:
    """The close handshake is complete; by_peer tells who started it."""

    reply_code: int
    reply_text: str
    by_peer: bool


@dataclass(slots=True, frozen=True)
class ProtocolError:
    """The client broke the protocol; connection.close is queued, state is CLOSING."""

    reply_code: int
    text: str


@dataclass(slots=True, frozen=True)
class ConnectionLost:
    """End of input (receive_data(b"")) without a completed close handshake."""


Event = (
    BadProtocolHeader
    | LoginRequested
    | SecureOkReceived
    | OpenRequested
    | UpdateSecretRequested
    | ChannelOpened
    | ChannelClosed
    | MethodReceived
    | ContentReceived
    | ConnectionClosed
    | ProtocolError
    | ConnectionLost
)

# --------------------------------------------------------------------------- tables

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
_CLASS_METHOD = Struct(">HH")
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
    class_id, method_id = _CLASS_METHOD.unpack_from(payload)
    return int(class_id << 16 | method_id)


class Hold:
    """Frames of one channel held back from a reply on (see ServerConnection.hold)."""

    __slots__ = ("done", "frames", "number", "state")

    def __init__(self, number: int, state: _Channel) -> None:
        self.number = number
        self.state = state
        self.frames: list[bytes] = []
        self.done = False


class _Channel:
    """An open channel and the content it is assembling (§4.2.6)."""

    __slots__ = (
        "close_code",
        "close_text",
        "closing",
        "encoded_props",
        "held",
        "method",
        "parts",
        "properties",
        "remaining",
    )

    def __init__(self) -> None:
        self.closing = False
        self.close_code = 0
        self.close_text = ""
        # Holds not released yet, oldest first; frames go to the newest.
        self.held: deque[Hold] = deque()
        self.reset()

    def reset(self) -> None:
        self.method: m.Method | None = None  # awaiting its header and body
        self.remaining = -1  # body bytes still expected; -1 until the header
        self.properties: Properties | None = None
        self.encoded_props = b""
        self.parts: list[memoryview] = []


class ServerConnection:
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
        self.server_properties = server_properties
        self.mechanisms = mechanisms
        self.max_message_size = max_message_size
        # Our offer in connection.tune; the negotiated values after tune-ok.
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.state = ConnState.AWAITING_HEADER
        # Tighter limits before authentication (DESIGN.md, "Errors and bad input").
        # Before tune, frames are limited tighter than after (RabbitMQ: 8192 bytes), yet
        # enough for an OAuth token in start-ok.
        self._reader = FrameReader(FRAME_MAX_BEFORE_TUNE)
        self._header = b""
        self._out: list[bytes] = []
        # Body bytes of the deliveries in _out: a consumer without a prefetch limit
        # stops being given messages past a bound (see AMQPConsumer.room).
        self.delivered_bytes = 0
        self._channels: dict[int, _Channel] = {}
        self._eof = False
        self._broken = False  # a framing error: the rest of the stream is noise
        self._close_code = 0
        self._close_text = ""
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

    def next_event(self) -> Event | Literal[_Sentinel.NEED_DATA]:
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

    def _input_exhausted(self) -> Event | Literal[_Sentinel.NEED_DATA]:
        if not self._eof:
            return NEED_DATA
        self.state = ConnState.CLOSED
        return ConnectionLost()

    def _protocol_header(self) -> Event | Literal[_Sentinel.NEED_DATA] | None:
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
        start = m.ConnectionStart(
            version_major=0,
            version_minor=9,
            server_properties=self.server_properties,
            mechanisms=" ".join(self.mechanisms).encode(),
            locales=b"en_US",
        )
        self._out.append(encode_method_frame(0, start))
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
        elif isinstance(method, m.ConnectionStartOk) and state is ConnState.AWAITING_START_OK:
            self.state = ConnState.SECURING
            return LoginRequested(
                method.mechanism, method.response, method.client_properties, method.locale
            )
        elif isinstance(method, m.ConnectionSecureOk) and state is ConnState.SECURING:
            return SecureOkReceived(method.response)
        elif isinstance(method, m.ConnectionTuneOk) and state is ConnState.AWAITING_TUNE_OK:
            self._tune(method)
            return None
        elif isinstance(method, m.ConnectionOpen) and state is ConnState.AWAITING_OPEN:
            return OpenRequested(method.virtual_host)
        raise HardError(
            ReplyCode.CHANNEL_ERROR,
            f"unexpected method in connection state {state.value}",
            method.CLASS_ID,
            method.METHOD_ID,
        )

    def _tune(self, tune: m.ConnectionTuneOk) -> None:
        """Negotiate limits (§1.4.2.6); 0 from the client means "no limit of mine"."""
        channel_max = tune.channel_max or self.channel_max or 0xFFFF
        frame_max = tune.frame_max or self.frame_max
        if self.channel_max and channel_max > self.channel_max:
            raise _not_allowed(f"channel_max={channel_max} > {self.channel_max} max")
        if frame_max and frame_max < FRAME_MIN_SIZE:
            raise _not_allowed(f"frame_max={frame_max} < {FRAME_MIN_SIZE} min size")
        if self.frame_max and frame_max > self.frame_max:
            raise _not_allowed(f"frame_max={frame_max} > {self.frame_max} max size")
        self.channel_max = channel_max
        self.frame_max = self._reader.frame_max = frame_max
        self.heartbeat = tune.heartbeat
        self.state = ConnState.AWAITING_OPEN

    def _channel_method(self, number: int, payload: memoryview) -> Event | None:
        channel = self._channels.get(number)
        if channel is None:
            return self._open_channel(number, m.decode_method(payload))
        if channel.closing:
            return self._while_channel_closing(number, channel, payload)
        if channel.method is not None:
            raise _unexpected_content(channel.method, "non content header frame")
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
            raise _method_error(ReplyCode.COMMAND_INVALID, "unimplemented method", method)
        if kind is m.ChannelOpen:
            raise _method_error(ReplyCode.CHANNEL_ERROR, "second 'channel.open' seen", method)
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
            raise _method_error(ReplyCode.CHANNEL_ERROR, "expected 'channel.open'", method)
        self._channels[number] = _Channel()
        self._out.append(encode_method_frame(number, _CHANNEL_OPEN_OK))
        return ChannelOpened(number)

    def _while_channel_closing(
        self, number: int, channel: _Channel, payload: memoryview
    ) -> Event | None:
        index = _index(payload)
        if index == _CHANNEL_CLOSE_OK:
            del self._channels[number]
            return ChannelClosed(number, channel.close_code, channel.close_text, by_peer=False)
        if index == _CHANNEL_CLOSE:  # both sides closed at once: answer, keep waiting
            self._out.append(encode_method_frame(number, m.ChannelCloseOk()))
        return None

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
        ``_channel_method``, ``_content_header`` and ``_content_body`` do for
        a publish on an idle open channel, and returns None for every case
        where they would do something else (an error, a channel that is
        closing, an oversize message): the result is the same either way.
        """
        channel = self._channels.get(number)
        if channel is None or channel.closing or channel.method is not None:
            return None
        method = _PUBLISHES.get(args)
        if method is None:
            method = _decode_publish(args)
            if method is None:
                return None
        if len(body) > self.max_message_size:
            return None
        known = _PROPERTIES.get(props)
        if known is None:
            known = _decode_props(props)
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
                raise _unexpected_content(method, "a second content header", body=True)
            return self._content_header(number, channel, method, payload)
        if channel.remaining < 0:
            raise _unexpected_content(method, "non content header frame")
        return self._content_body(number, channel, method, payload)

    def _content_header(
        self, number: int, channel: _Channel, method: m.Method, payload: memoryview
    ) -> Event | None:
        class_id, weight = _CLASS_METHOD.unpack_from(payload) if len(payload) >= 4 else (0, 0)
        if class_id != method.CLASS_ID:
            raise _unexpected_content(method, f"one for class {class_id}")
        if weight:  # §4.2.6.1: weight must be zero
            raise _unexpected_content(method, "non content header frame")
        body_size, properties = decode_properties(payload)
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
        encoded_props = bytes(payload[12:])
        if body_size == 0:  # §4.2.6.2: no body frames follow
            channel.reset()
            return ContentReceived(number, method, properties, b"", encoded_props)
        channel.remaining = body_size
        channel.properties = properties
        channel.encoded_props = encoded_props
        return None

    def _content_body(
        self, number: int, channel: _Channel, method: m.Method, payload: memoryview
    ) -> Event | None:
        remaining = channel.remaining - len(payload)
        if remaining < 0:
            raise _unexpected_content(method, "a body frame past the declared size", body=True)
        if remaining:
            channel.remaining = remaining
            channel.parts.append(payload)
            return None
        parts = channel.parts
        # One copy: the body leaves the receive buffer, which can then be freed.
        body = b"".join((*parts, payload)) if parts else bytes(payload)
        properties, encoded_props = channel.properties, channel.encoded_props
        assert properties is not None
        channel.reset()
        return ContentReceived(number, method, properties, body, encoded_props)

    # ----------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        """Everything queued since the last call, as one bytes object."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        self.delivered_bytes = 0
        return data

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out)

    def accept_login(self) -> None:
        """Authentication succeeded: queue connection.tune with our limits."""
        if self._require(ConnState.SECURING):
            tune = m.ConnectionTune(self.channel_max, self.frame_max, self.heartbeat)
            self._out.append(encode_method_frame(0, tune))
            self.state = ConnState.AWAITING_TUNE_OK

    def refuse_login(self, text: str) -> None:
        """Authentication failed: connection.close 403, as RabbitMQ does for a
        client with the authentication_failure_close capability."""
        self.close(ReplyCode.ACCESS_REFUSED, text)

    def send_secure(self, challenge: bytes) -> None:
        if self._require(ConnState.SECURING):
            self._out.append(encode_method_frame(0, m.ConnectionSecure(challenge)))

    def accept_open(self) -> None:
        """The virtual host may be used: queue connection.open-ok."""
        if self._require(ConnState.AWAITING_OPEN):
            self._out.append(encode_method_frame(0, m.ConnectionOpenOk()))
            self.state = ConnState.OPEN

    def _require(self, state: ConnState) -> bool:
        """False if the connection is closing anyway; an answer out of turn is a bug."""
        if self.state is state:
            return True
        if self.state is ConnState.CLOSING or self.state is ConnState.CLOSED:
            return False
        raise RuntimeError(f"not allowed in connection state {self.state.name}")

    def close(self, reply_code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Start closing the connection; a no-op if it is closing already."""
        if self.state is ConnState.AWAITING_HEADER:
            self.state = ConnState.CLOSED
        elif self.state is not ConnState.CLOSING and self.state is not ConnState.CLOSED:
            self._send_close(reply_code, text, class_id, method_id)

    def _send_close(self, reply_code: int, text: str, class_id: int, method_id: int) -> None:
        if self.state is ConnState.CLOSING or self.state is ConnState.CLOSED:
            return
        close = m.ConnectionClose(reply_code, text, class_id, method_id)
        self._out.append(encode_method_frame(0, close))
        self.state = ConnState.CLOSING
        self._close_code, self._close_text = reply_code, text

    def close_channel(
        self, channel: int, reply_code: int, text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        """Close a channel from our side; ChannelClosed follows the client's close-ok."""
        state = self._channels.get(channel)
        if state is None or state.closing or self.state is not ConnState.OPEN:
            return
        state.reset()
        state.closing = True
        state.close_code, state.close_text = reply_code, text
        close = m.ChannelClose(reply_code, text, class_id, method_id)
        # After the replies it holds: the client sees them before the close.
        out = state.held[-1].frames if state.held else self._out
        out.append(encode_method_frame(channel, close))

    # Holding replies back: a reply that must wait (for the disk) is queued behind a
    # Hold, and so is everything sent on its channel after it, so that nothing on the
    # channel overtakes it. Holds are released in the order they were taken.

    def hold(self, channel: int) -> Hold | None:
        """From now on, frames for ``channel`` wait until :meth:`release` of the result
        (and of every hold of the channel before it); None if the channel is closing."""
        state = self._channels.get(channel)
        if state is None or state.closing or self.state is not ConnState.OPEN:
            return None
        held = Hold(channel, state)
        state.held.append(held)
        return held

    def holding(self, channel: int) -> bool:
        state = self._channels.get(channel)
        return state is not None and bool(state.held)

    def release(self, held: Hold) -> None:
        """Let a hold's frames go, after those of the channel's earlier holds."""
        held.done = True
        state = held.state
        if self._channels.get(held.number) is not state or self.state is not ConnState.OPEN:
            state.held.clear()  # the channel (or the connection) is gone: so are they
            return
        queue = state.held
        while queue and queue[0].done:
            self._out.extend(queue.popleft().frames)

    def _target(self, channel: int) -> list[bytes] | None:
        """Where frames for ``channel`` go: the output, the newest hold, or nowhere
        (the connection or the channel is closing)."""
        if self.state is ConnState.CLOSING or self.state is ConnState.CLOSED:
            return None
        if channel == 0:
            return self._out
        state = self._channels.get(channel)
        if state is None or state.closing:
            return None
        return state.held[-1].frames if state.held else self._out

    def send_method(self, channel: int, method: m.Method) -> None:
        """Queue a method; dropped if the connection or the channel is closing."""
        out = self._target(channel)
        if out is not None:
            out.append(encode_method_frame(channel, method))

    def send_content(
        self, channel: int, method: m.Method, encoded_props: bytes, body: bytes
    ) -> None:
        """Queue a content-bearing method (basic.return, basic.get-ok)."""
        out = self._target(channel)
        if out is not None:
            frames = encode_content_frames(
                channel, method.encode(), encoded_props, body, self.frame_max
            )
            out.extend(frames)

    def send_deliveries(
        self,
        channel: int,
        consumer_tag: str,
        deliveries: list[tuple[int, bool, str, str, bytes, bytes]],
    ) -> None:
        """Queue several basic.deliver with their content, for one consumer: each item
        is (delivery tag, redelivered, exchange, routing key, encoded properties, body)."""
        state = self._channels.get(channel)
        if state is None or state.closing or self.state is not ConnState.OPEN:
            return
        out = state.held[-1].frames if state.held else self._out
        frame_max = self.frame_max
        size = 0
        for tag, redelivered, exchange, routing_key, encoded_props, body in deliveries:
            out += encode_deliver(
                channel,
                consumer_tag,
                tag,
                redelivered,
                exchange,
                routing_key,
                encoded_props,
                body,
                frame_max,
            )
            size += len(body)
        self.delivered_bytes += size

    def send_deliver(
        self,
        channel: int,
        consumer_tag: str,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        encoded_props: bytes,
        body: bytes,
    ) -> None:
        """Queue basic.deliver with its content."""
        self.send_deliveries(
            channel,
            consumer_tag,
            [(delivery_tag, redelivered, exchange, routing_key, encoded_props, body)],
        )

    def send_blocked(self, reason: str) -> None:
        self.send_method(0, m.ConnectionBlocked(reason))

    def send_unblocked(self) -> None:
        self.send_method(0, m.ConnectionUnblocked())

    def send_heartbeat(self) -> None:
        if self.state is not ConnState.CLOSED:
            self._out.append(HEARTBEAT_FRAME)


# Decoded basic.publish arguments and content properties by their wire bytes:
# publishers repeat the same exchange, routing key and properties, and a hit
# costs a dict lookup where a decode builds strings and objects. Both are
# emptied when full, so unique values (a message id per message) cost little
# and hold little. The objects are shared between messages, which is safe:
# methods and Properties are never changed in place (copy() makes new ones),
# as a message fanned out to many queues already relies on.
_CACHE_ENTRIES = 512
_CACHE_MAX_KEY = 512  # bytes; larger property lists are decoded every time
_PUBLISHES: dict[bytes, m.BasicPublish] = {}
_PROPERTIES: dict[bytes, tuple[Properties, bytes]] = {}


def _decode_publish(args: bytes) -> m.BasicPublish | None:
    """Decode (and cache) publish arguments; None if they do not parse."""
    try:
        method = m.BasicPublish.decode(args)
    except (StructError, ValueError, IndexError):
        return None
    if len(args) <= _CACHE_MAX_KEY:
        if len(_PUBLISHES) >= _CACHE_ENTRIES:
            _PUBLISHES.clear()
        _PUBLISHES[args] = method
    return method


def _decode_props(props: bytes) -> tuple[Properties, bytes] | None:
    """Decode (and cache) properties, kept with their wire form."""
    try:
        known = decode_encoded_properties(props), props
    except HardError:
        return None
    if len(props) <= _CACHE_MAX_KEY:
        if len(_PROPERTIES) >= _CACHE_ENTRIES:
            _PROPERTIES.clear()
        _PROPERTIES[props] = known
    return known


def _not_allowed(text: str) -> HardError:
    return HardError(
        ReplyCode.NOT_ALLOWED, text, m.ConnectionTuneOk.CLASS_ID, m.ConnectionTuneOk.METHOD_ID
    )


def _method_error(code: ReplyCode, text: str, method: m.Method) -> HardError:
    return HardError(code, text, method.CLASS_ID, method.METHOD_ID)


def _unexpected_content(method: m.Method, got: str, body: bool = False) -> HardError:
    """505 with RabbitMQ's wording, naming the method whose content was expected."""
    expected = "content body" if body else f"content header for class {method.CLASS_ID}"
    return _method_error(
        ReplyCode.UNEXPECTED_FRAME, f"expected {expected}, got {got} instead", method
    )
