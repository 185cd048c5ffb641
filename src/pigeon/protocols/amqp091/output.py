"""The sending half of a sans-IO AMQP 0-9-1 server connection.

:class:`ConnectionOutput` holds the connection's state and what it queues to
send: the adapter's answers to the handshake, methods, content and deliveries,
and replies held back behind a :class:`~pigeon.protocols.amqp091.wire_channel.Hold`
so that nothing on a channel overtakes them. :class:`ServerConnection
<pigeon.protocols.amqp091.connection.ServerConnection>` adds the receiving half.
"""

from __future__ import annotations

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import (
    HEARTBEAT_FRAME,
    encode_content_frames,
    encode_deliver,
    encode_method_frame,
)
from pigeon.protocols.amqp091.events import ConnState
from pigeon.protocols.amqp091.replies import ReplyCode
from pigeon.protocols.amqp091.wire_channel import Hold, WireChannel


class ConnectionOutput:
    """A connection's state, negotiated limits and queued output frames."""

    def __init__(self, channel_max: int, frame_max: int, heartbeat: int) -> None:
        # Our offer in connection.tune; the negotiated values after tune-ok.
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.state = ConnState.AWAITING_HEADER
        self._out: list[bytes] = []
        # Body bytes of the deliveries in _out: a consumer without a prefetch limit
        # stops being given messages past a bound (see AMQPConsumer.room).
        self.delivered_bytes = 0
        self._channels: dict[int, WireChannel] = {}
        self._close_code = 0
        self._close_text = ""

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

    def answer_held(
        self, held: Hold, method: m.Method, encoded_props: bytes | None = None, body: bytes = b""
    ) -> None:
        """Put a reply known late (a basic.get answered by another process) at the front
        of ``held``, taken when it was asked for, and release it: what the channel sent
        since waits behind it in a later hold."""
        if encoded_props is None:
            frames = [encode_method_frame(held.number, method)]
        else:
            body_frames = encode_content_frames(
                held.number, method.encode(), encoded_props, body, self.frame_max
            )
            frames = list(body_frames)
        held.frames[:0] = frames
        self.release(held)

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
