"""The sans-IO MQTT codec: an incremental :class:`Decoder` and :func:`encode`.

Bytes in, packets out; no sockets, no clock. The decoder reads the fixed header
first and refuses a packet above the maximum size before any of its body is
buffered. Every decoding failure is a :class:`ProtocolViolation` carrying the
reason code to answer with; any other exception escaping is a bug.
"""

from __future__ import annotations

import functools
from typing import Final

from pigeon.protocols.mqtt.decoding import READERS, connect_level, decode_connect, decode_publish
from pigeon.protocols.mqtt.encoding import encode
from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5, NO_PROPERTIES, Packet, Publish
from pigeon.protocols.mqtt.reasons import (
    ProtocolViolation,
    ReasonCode,
    malformed,
    protocol_error,
)
from pigeon.protocols.mqtt.wire import VARINT_MAX

__all__ = [
    "CONNECT_MAXIMUM_PACKET_SIZE",
    "MAXIMUM_PACKET_SIZE",
    "Decoder",
    "ProtocolViolation",
    "encode",
]

# The largest packet the standard can frame: one type byte, four length bytes
# and a Remaining Length of 268,435,455 (§1.5.5, §2.1.4).
MAXIMUM_PACKET_SIZE: Final = 1 + 4 + VARINT_MAX
# Before CONNECT is decoded nobody is authenticated; RabbitMQ allows 64 KiB then
# (``mqtt.max_packet_size_unauthenticated``), and so does Pigeon by default.
CONNECT_MAXIMUM_PACKET_SIZE: Final = 65_536

_CONNECT, _PUBLISH, _AUTH = 1, 3, 15
# Packets each side may send (§2.1.2 "Direction of flow").
_FROM_CLIENT: Final = frozenset({1, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15})
_FROM_SERVER: Final = frozenset({2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15})
# The fixed low nibble of every packet type but PUBLISH: PUBREL, SUBSCRIBE and
# UNSUBSCRIBE have 0010, the rest 0000 ([MQTT-2.1.3-1]; 3.1.1 [MQTT-2.2.2-1]).
_REQUIRED_FLAGS: Final = (0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)


def _first_byte_problem(first: int, version: int | None, from_client: bool) -> ProtocolViolation:
    """Why a first byte outside the fast-path table is refused."""
    kind = first >> 4
    if kind == 0 or (kind == _AUTH and version == MQTT_3_1_1):
        return malformed(f"packet type {kind} is reserved")
    if kind != _PUBLISH and first & 0x0F != _REQUIRED_FLAGS[kind]:
        return malformed(f"packet type {kind} with reserved flags {first & 0x0F:04b}")
    if kind == _PUBLISH and (first & 0x06 == 0x06 or first & 0x0E == 0x08):
        return malformed(f"PUBLISH flags {first & 0x0F:04b} are invalid")  # QoS 3, or DUP at QoS 0
    if kind == _CONNECT and from_client and version is not None:
        return protocol_error("a second CONNECT")  # [MQTT-3.1.0-2]
    if version is None and from_client:
        return protocol_error("the first packet is not CONNECT")  # [MQTT-3.1.0-1]
    side = "a client" if from_client else "a server"
    return protocol_error(f"packet type {kind} may not be sent by {side}")


@functools.cache  # (one set per kind of decoder, shared: not one per connection)
def _valid_first_bytes(version: int | None, from_client: bool) -> frozenset[int]:
    if version is None and from_client:
        return frozenset({0x10})
    allowed = _FROM_CLIENT if from_client else _FROM_SERVER
    firsts = {kind << 4 | _REQUIRED_FLAGS[kind] for kind in allowed if kind != _PUBLISH}
    firsts.discard(0x10)  # CONNECT only opens a connection
    if version == MQTT_3_1_1:
        firsts.discard(0xF0)
    # PUBLISH: any DUP/QoS/RETAIN but QoS 3 [MQTT-3.3.1-4] and DUP at QoS 0 [MQTT-3.3.1-2].
    firsts.update(0x30 | f for f in range(16) if (f >> 1) & 3 != 3 and not (f & 8 and not f & 6))
    return frozenset(firsts)


def _check_client_publish(publish: Publish) -> None:
    if publish.properties.subscription_identifiers:
        raise protocol_error("a client sent a Subscription Identifier")  # [MQTT-3.3.4-6]


class Decoder:
    """Split a byte stream into MQTT packets.

    A server-side decoder (``from_client=True``, no ``version``) accepts only a
    CONNECT first and takes the protocol level from it; ``version`` is set as
    soon as that level is read, so a CONNECT refused later in its body can still
    be answered in its own version. A client-side decoder is given its version.

    ``maximum_packet_size`` counts the whole packet, fixed header included (as
    5.0's Maximum Packet Size does); it may be changed between calls to
    :meth:`feed`. Until CONNECT has been decoded ``connect_maximum_packet_size``
    applies instead. A :class:`ProtocolViolation` lists in ``packets`` the
    packets the same call decoded before the bad one (handle them, then close);
    after it the decoder raises the violation again on every call.
    """

    __slots__ = (
        "_error",
        "_first_bytes",
        "_from_client",
        "_need",
        "_pending",
        "connect_maximum_packet_size",
        "maximum_packet_size",
        "version",
    )

    def __init__(
        self,
        *,
        version: int | None = None,
        from_client: bool = True,
        maximum_packet_size: int = MAXIMUM_PACKET_SIZE,
        connect_maximum_packet_size: int = CONNECT_MAXIMUM_PACKET_SIZE,
    ) -> None:
        if version not in (None, MQTT_3_1_1, MQTT_5):
            raise ValueError(f"MQTT protocol level {version} is not supported")
        if version is None and not from_client:
            raise ValueError("a client-side decoder needs the version it connected with")
        self.version = version
        self.maximum_packet_size = maximum_packet_size
        self.connect_maximum_packet_size = connect_maximum_packet_size
        self._from_client = from_client
        self._first_bytes = _valid_first_bytes(version, from_client)
        self._pending = bytearray()
        self._need = 0  # size of the packet being buffered, once its fixed header is in
        self._error: ProtocolViolation | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """The packets ``data`` completes, in order (possibly none)."""
        if self._error is not None:
            raise ProtocolViolation(self._error.reason, self._error.text)
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []  # still inside a body whose size was already checked
            data = bytes(self._pending)
            self._pending.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        packets: list[Packet] = []
        try:
            self._split(data, packets)
        except ProtocolViolation as error:
            self._error = error
            error.packets = tuple(packets)
            raise
        return packets

    def _limit(self) -> int:
        return self.maximum_packet_size if self.version is not None else (
            self.connect_maximum_packet_size
        )  # fmt: skip

    def _split(self, data: bytes, packets: list[Packet]) -> None:
        size = len(data)
        pos = 0
        self._need = 0
        limit = self._limit()
        first_bytes = self._first_bytes
        while pos < size:
            first = data[pos]
            if first not in first_bytes:
                raise _first_byte_problem(first, self.version, self._from_client)
            if pos + 1 < size and data[pos + 1] < 0x80:
                remaining, body = data[pos + 1], pos + 2  # the common one-byte length
            else:
                header = self._remaining_length(data, pos + 1, size)
                if header is None:
                    break
                remaining, body = header
            end = body + remaining
            if end - pos > limit:
                raise ProtocolViolation(
                    ReasonCode.PACKET_TOO_LARGE,
                    f"packet of {end - pos} bytes exceeds the maximum packet size {limit}",
                )
            if end > size:
                self._need = end - pos
                break
            if first >> 4 == _PUBLISH:
                publish = decode_publish(first & 0x0F, data, body, end, self.version or MQTT_5)
                if publish.properties is not NO_PROPERTIES and self._from_client:
                    _check_client_publish(publish)
                packets.append(publish)
            else:
                packets.append(self._decode_other(first, data, body, end))
                limit = self._limit()  # CONNECT sets the version, and with it the limit
                first_bytes = self._first_bytes
            pos = end
        if pos < size:
            self._pending += data[pos:]

    @staticmethod
    def _remaining_length(data: bytes, pos: int, size: int) -> tuple[int, int] | None:
        """Remaining Length and where the body starts; ``None`` until all its bytes are in."""
        value = 0
        for shift in (0, 7, 14, 21):
            if pos >= size:
                return None
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if byte == 0 and shift:
                    raise malformed("Remaining Length not in its shortest form")  # [MQTT-1.5.5-1]
                return value, pos
        raise malformed("Remaining Length longer than four bytes")  # §1.5.5

    def _decode_other(self, first: int, data: bytes, pos: int, end: int) -> Packet:
        kind = first >> 4
        if kind == _CONNECT:
            self.version = connect_level(data, pos, end)
            packet = decode_connect(0, data, pos, end, self.version)
            self._first_bytes = _valid_first_bytes(self.version, self._from_client)
            return packet
        reader = READERS[kind]
        assert reader is not None  # type 0 never passes the first-byte table
        return reader(first & 0x0F, data, pos, end, self.version or MQTT_5)
