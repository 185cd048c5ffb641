"""Splitting an AMQP 0-9-1 byte stream into frames, with a fast path for basic.publish."""

from __future__ import annotations

from collections.abc import Iterator
from struct import Struct

from pigeon.protocols.amqp091.codec import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    FRAME_OVERHEAD,
)
from pigeon.protocols.amqp091.replies import HardError, ReplyCode

_FRAME_HEAD = Struct(">BHI")
_FRAME_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})


# basic.publish's method frame up to its arguments (type, channel, size, class,
# method), then a content header frame up to its property flags, then a body
# frame's head: what the publish fast path reads in three unpacks.
_METHOD_HEAD = Struct(">BHIHH")
_HEADER_HEAD = Struct(">BHIHHQ")


class FrameReader:
    """Splits a byte stream into frames ``(type, channel, payload)``.

    Feed it bytes, then call :meth:`next_frame` (or iterate) until it returns
    None: the rest is incomplete (no exception for that: it is the normal
    case). Payloads are memoryviews into the received bytes, valid until the
    caller drops them. Frame size is checked against ``frame_max`` from the
    7-byte header, before any of the payload is buffered (amqp0-9-1 §4.2.3).
    """

    __slots__ = ("_buf", "_chunks", "_limit", "_need", "_pending", "_pos", "_view")

    def __init__(self, frame_max: int = FRAME_MIN_SIZE) -> None:
        self.frame_max = frame_max
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        # Bytes received since _buf, joined only once the next frame is
        # complete, so a large frame arriving in many reads is copied once.
        self._chunks: list[bytes] = []
        self._pending = 0
        self._need = 0

    @property
    def frame_max(self) -> int:
        """The largest frame accepted, overhead included; 0 means no limit."""
        return self._limit + FRAME_OVERHEAD if self._limit != 0xFFFF_FFFF else 0

    @frame_max.setter
    def frame_max(self, frame_max: int) -> None:
        self._limit = frame_max - FRAME_OVERHEAD if frame_max else 0xFFFF_FFFF

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._pending += len(data)
        if len(self._buf) - self._pos + self._pending >= self._need:
            self._join()

    def _join(self) -> None:
        if self._pos < len(self._buf):
            self._chunks.insert(0, self._buf[self._pos :])
        # bytes, never a caller's bytearray: payload views must be hashable
        # (the connection's caches look them up without copying).
        chunks = self._chunks
        self._buf = chunks[0] if len(chunks) == 1 and type(chunks[0]) is bytes else b"".join(chunks)
        self._view = memoryview(self._buf)
        self._chunks = []
        self._pending = 0
        self._pos = 0

    def __iter__(self) -> Iterator[tuple[int, int, memoryview]]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> tuple[int, int, memoryview] | None:
        """The next complete frame, or None when the buffer holds none.

        Raises HardError 501 on a frame that breaks the framing; the stream
        is unusable after that.
        """
        buf = self._buf
        pos = self._pos
        end = len(buf)
        # Chunks still pending (see feed) cannot complete the next frame.
        if end - pos < 7:
            self._need = 7
            return None
        frame_type, channel, size = _FRAME_HEAD.unpack_from(buf, pos)
        if size > self._limit or frame_type not in _FRAME_TYPES or (frame_type == 8 and size):
            self._pos = end  # the stream is unusable from here
            raise _frame_error(frame_type, size, self._limit)
        frame_end = pos + 7 + size
        if frame_end >= end:
            self._need = frame_end + 1 - pos
            return None
        if buf[frame_end] != FRAME_END:
            self._pos = end
            raise HardError(
                ReplyCode.FRAME_ERROR,
                f"type {frame_type}: invalid frame end marker {buf[frame_end]:#x}",
            )
        self._pos = frame_end + 1
        return frame_type, channel, self._view[pos + 7 : frame_end]

    def peek_publish(self) -> tuple[int, bytes, bytes, bytes, int] | None:
        """The fast path's look at the buffer: a whole published message, or None.

        When the next frames are basic.publish, a basic content header of
        weight 0 and (unless it announces an empty body, §4.2.6.2) the whole
        body in a single frame, all on one channel, complete, within frame_max
        and well framed: ``(channel, publish arguments, property flags and
        list, body, end)``, the byte strings copied out of the buffer. Nothing
        is consumed; :meth:`skip_to` ``(end)`` does. Anything else, including
        every malformed input, is None: :meth:`next_frame` then takes the
        frames one by one and reports what is wrong with them.
        """
        buf = self._buf
        pos = self._pos
        end = len(buf)
        # The low octet of the method id first: a cheap no for every other frame.
        if end - pos < 11 or buf[pos + 10] != 40:
            return None
        frame_type, channel, size, class_id, method_id = _METHOD_HEAD.unpack_from(buf, pos)
        header = pos + 8 + size  # the content header frame
        limit = self._limit
        if (
            method_id != 40
            or class_id != 60
            or frame_type != FRAME_METHOD
            or size > limit
            or size < 4
            or header + 19 > end
            or buf[header - 1] != FRAME_END
        ):
            return None
        frame_type, header_channel, size, class_id, weight, body_size = _HEADER_HEAD.unpack_from(
            buf, header
        )
        body = header + 8 + size  # the body frame, or the end of the message
        if (
            frame_type != FRAME_HEADER
            or header_channel != channel
            or class_id != 60
            or weight
            or size > limit
            or size < 14
            or body > end
            or buf[body - 1] != FRAME_END
        ):
            return None
        if not body_size:
            return channel, buf[pos + 11 : header - 1], buf[header + 19 : body - 1], b"", body
        if body + 7 > end:
            return None
        frame_type, body_channel, size = _FRAME_HEAD.unpack_from(buf, body)
        stop = body + 8 + size
        if (
            frame_type != FRAME_BODY
            or body_channel != channel
            or size != body_size
            or size > limit
            or stop > end
            or buf[stop - 1] != FRAME_END
        ):
            return None
        return (
            channel,
            buf[pos + 11 : header - 1],
            buf[header + 19 : body - 1],
            buf[body + 7 : stop - 1],
            stop,
        )

    def skip_to(self, end: int) -> None:
        """Consume the buffer up to ``end``, an offset :meth:`peek_publish` gave."""
        self._pos = end


def _frame_error(frame_type: int, size: int, limit: int) -> HardError:
    if size > limit:
        text = f"type {frame_type}: frame of {size} bytes, the limit is {limit}"
    elif frame_type == FRAME_HEARTBEAT:
        text = f"heartbeat frame with a {size}-byte payload"
    else:
        text = f"type {frame_type}: unknown frame type"
    return HardError(ReplyCode.FRAME_ERROR, text)
