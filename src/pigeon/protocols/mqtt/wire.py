"""MQTT data representations (§1.5): integers, variable byte integers, strings, binary data.

Readers take ``(data, pos, end)`` and return ``(value, new_pos)``; they never
read past ``end`` (the end of the packet) and raise :class:`ProtocolViolation`
with Malformed Packet when the bytes run out or break a rule of §1.5.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from pigeon.protocols.mqtt.reasons import malformed

U16: Final = Struct(">H")
U32: Final = Struct(">I")
_u16_from = U16.unpack_from
_u32_from = U32.unpack_from
pack_u16 = U16.pack
pack_u32 = U32.pack

VARINT_MAX: Final = 268_435_455  # four bytes of seven bits (§1.5.5)
STRING_MAX: Final = 65_535

# Encodings of 0..16383 (one or two bytes), the sizes nearly every packet has.
_SHORT_VARINTS: Final = tuple(
    bytes((n,)) if n < 128 else bytes((n & 0x7F | 0x80, n >> 7)) for n in range(16384)
)


def encode_varint(value: int) -> bytes:
    """The Variable Byte Integer encoding of ``value`` in the fewest bytes [MQTT-1.5.5-1]."""
    if value < 16384:
        return _SHORT_VARINTS[value]
    if value > VARINT_MAX:
        raise ValueError(f"{value} does not fit a Variable Byte Integer (max {VARINT_MAX})")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A Variable Byte Integer: at most four bytes, no needless trailing zero groups."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            raise malformed("Variable Byte Integer runs past the end of the packet")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                # [MQTT-1.5.5-1] the encoded value MUST use the minimum number of bytes.
                raise malformed("Variable Byte Integer not in its shortest form")
            return value, pos
    raise malformed("Variable Byte Integer longer than four bytes")


def read_byte(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise malformed("packet ends where a byte was expected")
    return data[pos], pos + 1


def read_u16(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise malformed("packet ends inside a Two Byte Integer")
    return _u16_from(data, pos)[0], pos + 2


def read_u32(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise malformed("packet ends inside a Four Byte Integer")
    return _u32_from(data, pos)[0], pos + 4


def read_binary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Binary Data: a two-byte length, then that many bytes (§1.5.6)."""
    if pos + 2 > end:
        raise malformed("packet ends inside a length prefix")
    size = _u16_from(data, pos)[0]
    pos += 2
    if pos + size > end:
        raise malformed(f"length prefix of {size} runs past the end of the packet")
    return bytes(data[pos : pos + size]), pos + size


def decode_utf8(raw: bytes) -> str:
    """Validate an MQTT UTF-8 string (§1.5.4).

    Python's strict decoder already refuses ill-formed UTF-8 and the encoded
    surrogates U+D800..U+DFFF [MQTT-1.5.4-1]; U+0000 is checked here
    [MQTT-1.5.4-2]. A leading U+FEFF is kept as a character [MQTT-1.5.4-3].
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise malformed(f"string is not well-formed UTF-8 ({error.reason})") from None
    if "\x00" in text:
        raise malformed("string contains U+0000")
    return text


def read_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """A UTF-8 Encoded String: two-byte length, then validated UTF-8 (§1.5.4)."""
    raw, pos = read_binary(data, pos, end)
    return decode_utf8(raw), pos


def encode_binary(value: bytes) -> bytes:
    if len(value) > STRING_MAX:
        raise ValueError(f"binary data of {len(value)} bytes exceeds {STRING_MAX}")
    return pack_u16(len(value)) + value


def encode_string(value: str) -> bytes:
    return encode_binary(value.encode("utf-8"))
