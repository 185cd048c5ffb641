"""Sans-IO reader of the frames a broker sends to a benchmark client.

It does the least work per delivery: it finds ``basic.deliver``, its content
header and first body frame, reads the 16-byte payload prefix (sequence number,
send time in ns) and counts. Publisher confirms and every other method go to
callbacks; the hot path never builds an object per message.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable

from pigeon.bench.wire import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_METHOD,
    PREFIX,
    PREFIX_SIZE,
)

_HEAD = struct.Struct(">BHI")
_CLASS_METHOD = struct.Struct(">HH")
_U64 = struct.Struct(">Q")
_ACK = struct.Struct(">QB")

MethodHandler = Callable[[int, tuple[int, int], bytes], None]
ConfirmHandler = Callable[[int, bool, bool], None]


class FrameError(Exception):
    """The peer sent bytes that are not AMQP frames."""


class FrameScanner:
    """Feed it bytes; it counts deliveries and hands other frames to callbacks.

    ``on_method(channel, (class_id, method_id), arguments)`` gets every method
    except deliveries and confirms; ``on_confirm(delivery_tag, multiple, nack)``
    gets ``basic.ack`` / ``basic.nack`` from the broker (RabbitMQ's publisher
    confirms).
    """

    def __init__(self, on_method: MethodHandler, on_confirm: ConfirmHandler) -> None:
        self._buf = bytearray()
        self._on_method = on_method
        self._on_confirm = on_confirm
        self._remaining = 0  # body bytes still due for the current delivery
        self._first_body = False
        self._tag = 0
        self.delivered = 0
        self.last_tag = 0
        self.last_seq = -1
        self.latencies: array[int] = array("q")
        # Only messages sent inside [record_from_ns, record_until_ns) are timed, so
        # warm-up and drain do not pollute the percentiles.
        self.record_from_ns = 0
        self.record_until_ns = 1 << 62

    def feed(self, data: bytes, now_ns: int) -> None:
        """Consume ``data``; ``now_ns`` is the arrival time of the whole chunk.

        The delivery path is inlined, with the state in locals, because this loop
        is the load generator's most expensive code (a few µs per message).
        """
        buf = self._buf
        buf += data
        end_of_data = len(buf)
        pos = 0
        unpack_head = _HEAD.unpack_from
        unpack_ids = _CLASS_METHOD.unpack_from
        unpack_prefix = PREFIX.unpack_from
        remaining, first_body, tag = self._remaining, self._first_body, self._tag
        delivered, last_tag = self.delivered, self.last_tag
        record_from, record_until = self.record_from_ns, self.record_until_ns
        timed = self.latencies.append
        while end_of_data - pos >= 8:
            kind, channel, size = unpack_head(buf, pos)
            end = pos + 7 + size
            if end >= end_of_data:
                break
            if buf[end] != FRAME_END:
                raise FrameError(f"frame-end octet missing at offset {end}")
            start = pos + 7
            pos = end + 1
            if kind == FRAME_BODY:
                if first_body:
                    first_body = False
                    if size >= PREFIX_SIZE:
                        self.last_seq, sent = unpack_prefix(buf, start)
                        if record_from <= sent < record_until:
                            timed(now_ns - sent)
                remaining -= size
                if remaining <= 0:
                    delivered += 1
                    last_tag = tag
            elif kind == FRAME_HEADER:
                remaining = _U64.unpack_from(buf, start + 4)[0]
                first_body = True
                if remaining == 0:
                    delivered += 1
                    last_tag = tag
            elif kind == FRAME_METHOD:
                if unpack_ids(buf, start) == (60, 60):  # basic.deliver: skip consumer-tag
                    tag = _U64.unpack_from(buf, start + 5 + buf[start + 4])[0]
                else:
                    self._method(buf, channel, start, size)
        del buf[:pos]
        self._remaining, self._first_body, self._tag = remaining, first_body, tag
        self.delivered, self.last_tag = delivered, last_tag

    def _method(self, buf: bytearray, channel: int, start: int, size: int) -> None:
        class_id, method_id = _CLASS_METHOD.unpack_from(buf, start)
        if class_id == 60 and method_id in (80, 120):  # basic.ack / nack: tag, multiple bit
            tag, flags = _ACK.unpack_from(buf, start + 4)
            self._on_confirm(tag, bool(flags & 1), method_id == 120)
            return
        self._on_method(channel, (class_id, method_id), bytes(buf[start + 4 : start + size]))
