"""WebSocket frames (RFC 6455 §5), without I/O: headers read and written, payloads unmasked.

Only what a server needs: it reads masked client frames and writes unmasked ones.
No extension is ever negotiated, so the RSV bits must be clear (§5.2).
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(IntEnum):
    """Status codes of a close frame (RFC 6455 §7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server shuts down
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003  # a text frame where only binary is spoken
    INVALID_DATA = 1007  # a close reason that is not UTF-8
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011


_OPCODES = frozenset(int(op) for op in Opcode)
# Codes a peer may send (§7.4.1, §7.4.2): 1004-1006 and 1015 are reserved and must never
# appear on the wire; 1012-1014 are registered with IANA since; 3000-4999 are for
# libraries and applications.
_PEER_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})
MAX_CONTROL_PAYLOAD = 125  # §5.5
_PIECE = 16 * 1024  # a multiple of 4: the mask keeps its phase from piece to piece

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_HEADER_SHORT = struct.Struct("!BB")
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


class FrameError(Exception):
    """The peer broke RFC 6455: fail the connection with ``code`` (§7.1.7)."""

    def __init__(self, code: CloseCode, reason: str, skip: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        # The bad frame's size from its first byte, to step over so that the peer's answer
        # to our close can still be read; None: the input cannot be followed any more.
        self.skip = skip


class Header(NamedTuple):  # a tuple: made per frame, and a frozen dataclass costs more
    fin: bool
    opcode: int
    length: int  # of the payload
    mask: bytes  # 4 bytes; a server only accepts masked frames
    size: int  # of the header itself


def parse_header(buffer: bytes | bytearray | memoryview, start: int) -> Header | None:
    """The frame header at ``buffer[start:]``; None if it is not whole yet.

    Raises :class:`FrameError` for what no frame may be, whatever state the
    connection is in: reserved bits, unknown opcodes, long or fragmented control
    frames, a 64-bit length with its top bit set, and unmasked frames.
    """
    available = len(buffer) - start
    if available < 2:
        return None
    b0, b1 = buffer[start], buffer[start + 1]
    length = b1 & 0x7F
    size = 2
    if length == 126:
        if available < 4:
            return None
        (length,) = _U16.unpack_from(buffer, start + 2)
        size = 4
    elif length == 127:
        if available < 10:
            return None
        (length,) = _U64.unpack_from(buffer, start + 2)
        if length >> 63:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "payload length over 2^63")  # §5.2
        size = 10
    masked = b1 & 0x80
    if masked:
        if available < size + 4:
            return None
        mask = bytes(buffer[start + size : start + size + 4])
        size += 4
    else:
        mask = b""
    opcode = b0 & 0x0F
    fin = bool(b0 & 0x80)
    skip = size + length
    if b0 & 0x70:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "reserved bits set", skip)
    if opcode not in _OPCODES:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode:#x}", skip)
    if opcode >= 0x8 and (not fin or length > MAX_CONTROL_PAYLOAD):
        raise FrameError(CloseCode.PROTOCOL_ERROR, "fragmented or long control frame", skip)
    if not masked:
        # §5.1: a server MUST close the connection upon an unmasked frame.
        raise FrameError(CloseCode.PROTOCOL_ERROR, "unmasked client frame", skip)
    return Header(fin, opcode, length, mask, size)


def unmask(data: bytes | bytearray | memoryview, mask: bytes, offset: int = 0) -> bytes:
    """``data`` XOR the 4-byte ``mask`` (§5.3), starting ``offset`` bytes into the payload.

    Big-integer XORs over whole pieces of the buffer: a loop per byte in Python runs
    at about 15 MB/s, this at hundreds (``python -m benchmarks.websocket``). Pieces of
    16 KiB, because past about 32 KiB the big integers get slower per byte.
    """
    n = len(data)
    shift = offset & 3
    if shift:
        mask = mask[shift:] + mask[:shift]
    if n <= _PIECE:
        if n == 0:
            return b""
        key = int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")
    key = int.from_bytes(mask * (_PIECE >> 2), "little")
    view = memoryview(data)
    pieces = [
        (int.from_bytes(view[i : i + _PIECE], "little") ^ key).to_bytes(_PIECE, "little")
        for i in range(0, n - _PIECE + 1, _PIECE)
    ]
    tail = n % _PIECE
    if tail:
        rest = int.from_bytes(view[n - tail :], "little") ^ (key & ((1 << (8 * tail)) - 1))
        pieces.append(rest.to_bytes(tail, "little"))
    return b"".join(pieces)


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final server frame of ``length`` payload bytes."""
    b0 = 0x80 | opcode
    if length < 126:
        return _HEADER_SHORT.pack(b0, length)
    if length < 0x10000:
        return _HEADER_16.pack(b0, 126, length)
    return _HEADER_64.pack(b0, 127, length)


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return frame_header(opcode, len(payload)) + payload


def close_frame(code: int | None, reason: str = "") -> bytes:
    """A close frame; ``code`` None: one without a status (§5.5.1)."""
    if code is None:
        return control_frame(Opcode.CLOSE)
    # The reason is cut so the payload fits a control frame, never inside a character.
    encoded = reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    return control_frame(Opcode.CLOSE, _U16.pack(code) + encoded)


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """The code and reason of a peer's close frame (§5.5.1, §7.4)."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close frame of one byte")
    (code,) = _U16.unpack_from(payload)
    if code not in _PEER_CODES and not 3000 <= code <= 4999:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"close code {code} is not allowed")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
    return code, reason
