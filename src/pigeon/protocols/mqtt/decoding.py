"""Packet bodies from bytes, one function per packet type (MQTT 3.1.1 and 5.0 chapter 3).

Each reader gets the packet's flags (low nibble of the first byte), the buffer
and the ``[pos, end)`` span of the variable header and payload, and the
protocol level. The fixed header was checked by :mod:`pigeon.protocols.mqtt.codec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
    new_publish,
)
from pigeon.protocols.mqtt.properties import NO_PROPERTIES, PacketKind, Properties, read_properties
from pigeon.protocols.mqtt.reasons import (
    SUBACK_FAILURE,
    ProtocolViolation,
    ReasonCode,
    malformed,
    protocol_error,
    reason_from_connack_return_code,
)
from pigeon.protocols.mqtt.wire import (
    read_binary,
    read_byte,
    read_string,
    read_u16,
)


def _reasons(*values: int) -> frozenset[ReasonCode]:
    return frozenset(ReasonCode(v) for v in values)


# The reason codes each packet may carry in 5.0 (§3.2.2.2, §3.4.2.1 ... §3.15.2.1).
_CONNACK_REASONS: Final = _reasons(
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
    0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
)  # fmt: skip
_PUBACK_REASONS: Final = _reasons(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
_PUBREL_REASONS: Final = _reasons(0x00, 0x92)
_SUBACK_REASONS: Final = _reasons(
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2
)  # fmt: skip
_UNSUBACK_REASONS: Final = _reasons(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
_DISCONNECT_REASONS: Final = _reasons(
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
    0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
    0xA0, 0xA1, 0xA2,
)  # fmt: skip
_AUTH_REASONS: Final = _reasons(0x00, 0x18, 0x19)
_SUBACK_RETURN_CODES_311: Final = _reasons(0x00, 0x01, 0x02, SUBACK_FAILURE)

Reader = Callable[[int, bytes, int, int, int], Packet]


def _reason(code: int, allowed: frozenset[ReasonCode], packet: str) -> ReasonCode:
    if code not in allowed:
        raise protocol_error(f"reason code 0x{code:02X} is not defined for {packet}")
    return ReasonCode(code)


def _at_end(pos: int, end: int, packet: str) -> None:
    if pos != end:
        raise malformed(f"{end - pos} unexpected bytes at the end of {packet}")


def _packet_id(data: bytes, pos: int, end: int, packet: str) -> tuple[int, int]:
    packet_id, pos = read_u16(data, pos, end)
    if packet_id == 0:
        # [MQTT-2.2.1-3] (5.0), [MQTT-2.3.1-1] (3.1.1): a packet identifier is non-zero.
        raise protocol_error(f"{packet} has packet identifier 0")
    return packet_id, pos


def connect_level(data: bytes, pos: int, end: int) -> int:
    """The protocol level of a CONNECT, refused unless 4 (3.1.1) or 5 (5.0)."""
    name, pos = read_string(data, pos, end)
    level, pos = read_byte(data, pos, end)
    if name == "MQIsdp" or (name == "MQTT" and level not in (MQTT_3_1_1, MQTT_5)):
        # [MQTT-3.1.2-2]: answer CONNACK 0x01 (3.1.1) / 0x84 (5.0), then close.
        raise ProtocolViolation(
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
            f"protocol {name!r} level {level} is not supported (only MQTT 3.1.1 and 5.0)",
        )
    if name != "MQTT":
        raise protocol_error(f"protocol name {name!r} is not 'MQTT'")  # [MQTT-3.1.2-1]
    return level


def _read_will(data: bytes, pos: int, end: int, version: int, flags: int) -> tuple[Will, int]:
    properties = NO_PROPERTIES
    if version == MQTT_5:
        properties, pos = read_properties(data, pos, end, PacketKind.WILL)
    topic, pos = read_string(data, pos, end)
    payload, pos = read_binary(data, pos, end)
    qos = (flags >> 3) & 3
    return Will(topic, payload, qos, bool(flags & 0x20), properties), pos


def _check_connect_flags(flags: int, version: int) -> None:
    if flags & 0x01:
        raise malformed("CONNECT reserved flag is set")  # [MQTT-3.1.2-3]
    will_qos = (flags >> 3) & 3
    if will_qos == 3:
        raise malformed("CONNECT will QoS is 3")  # [MQTT-3.1.2-12]
    if not flags & 0x04 and (will_qos or flags & 0x20):
        # [MQTT-3.1.2-11], [MQTT-3.1.2-13]: without a will, will QoS and retain are 0.
        raise malformed("CONNECT has will QoS or will retain without a will")
    if version == MQTT_3_1_1 and flags & 0x40 and not flags & 0x80:
        raise malformed("CONNECT has a password without a user name")  # 3.1.1 [MQTT-3.1.2-22]


def decode_connect(_flags: int, data: bytes, pos: int, end: int, _version: int) -> Connect:
    level = connect_level(data, pos, end)
    pos += 7  # "MQTT" with its length, and the level byte
    flags, pos = read_byte(data, pos, end)
    _check_connect_flags(flags, level)
    keepalive, pos = read_u16(data, pos, end)
    properties = NO_PROPERTIES
    if level == MQTT_5:
        properties, pos = read_properties(data, pos, end, PacketKind.CONNECT)
    client_id, pos = read_string(data, pos, end)
    will = None
    if flags & 0x04:
        will, pos = _read_will(data, pos, end, level, flags)
    username = password = None
    if flags & 0x80:
        username, pos = read_string(data, pos, end)
    if flags & 0x40:
        password, pos = read_binary(data, pos, end)
    _at_end(pos, end, "CONNECT")
    return Connect(
        level, client_id, bool(flags & 0x02), keepalive, username, password, will, properties
    )


def decode_connack(_flags: int, data: bytes, pos: int, end: int, version: int) -> Connack:
    ack_flags, pos = read_byte(data, pos, end)
    if ack_flags & 0xFE:
        raise malformed("CONNACK reserved flags are set")  # [MQTT-3.2.2-1]
    code, pos = read_byte(data, pos, end)
    if version == MQTT_3_1_1:
        _at_end(pos, end, "CONNACK")
        if code > 5:
            raise protocol_error(f"CONNACK return code {code} is reserved")
        return Connack(bool(ack_flags), reason_from_connack_return_code(code))
    reason = _reason(code, _CONNACK_REASONS, "CONNACK")
    properties, pos = read_properties(data, pos, end, PacketKind.CONNACK)
    _at_end(pos, end, "CONNACK")
    return Connack(bool(ack_flags), reason, properties)


# Validated topic names by their bytes: publishers reuse a few topics, and a hit
# skips decoding and checking. Short names only, so the cache stays small.
_TOPIC_NAMES: dict[bytes, str] = {}
_TOPIC_NAMES_KEPT: Final = 4096
_TOPIC_NAME_CACHED_BYTES: Final = 256


def _topic_name(raw: bytes) -> str:
    try:
        topic = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise malformed(f"PUBLISH topic is not well-formed UTF-8 ({error.reason})") from None
    if "\x00" in topic:
        raise malformed("PUBLISH topic contains U+0000")  # [MQTT-1.5.4-2]
    if "+" in topic or "#" in topic:
        # [MQTT-3.3.2-2] no wildcards in a topic name.
        raise ProtocolViolation(ReasonCode.TOPIC_NAME_INVALID, f"topic {topic!r} has a wildcard")
    if topic and len(raw) <= _TOPIC_NAME_CACHED_BYTES:
        if len(_TOPIC_NAMES) >= _TOPIC_NAMES_KEPT:
            _TOPIC_NAMES.clear()
        _TOPIC_NAMES[raw] = topic
    return topic


def decode_publish(flags: int, data: bytes, pos: int, end: int, version: int) -> Publish:
    """PUBLISH (§3.3); the hot path, so the common steps are inline."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise malformed("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
    if flags & 0x08 and not qos:
        raise malformed("PUBLISH at QoS 0 with the DUP flag")  # [MQTT-3.3.1-2]
    start = pos + 2
    if start > end:
        raise malformed("PUBLISH ends inside its topic length")
    pos = start + (data[pos] << 8 | data[pos + 1])
    if pos > end:
        raise malformed("PUBLISH topic runs past the end of the packet")
    raw = data[start:pos]
    topic = _TOPIC_NAMES.get(raw) or _topic_name(raw)
    packet_id = None
    if qos:
        if pos + 2 > end:
            raise malformed("PUBLISH ends inside its packet identifier")
        packet_id = data[pos] << 8 | data[pos + 1]
        if not packet_id:
            raise protocol_error("PUBLISH has packet identifier 0")  # [MQTT-2.2.1-3]
        pos += 2
    properties = NO_PROPERTIES
    if version == MQTT_5:
        if pos < end and not data[pos]:
            pos += 1
        else:
            properties, pos = read_properties(data, pos, end, PacketKind.PUBLISH)
            if not topic and properties.topic_alias is not None:
                return new_publish(topic, data[pos:end], qos, flags & 1 == 1, flags & 8 == 8,
                                   packet_id, properties)  # fmt: skip
    if not topic:
        # [MQTT-4.7.3-1]; 5.0 §3.3.2.3.4: empty only with a topic alias.
        raise protocol_error("PUBLISH topic name is empty")
    return new_publish(topic, data[pos:end], qos, flags & 1 == 1, flags & 8 == 8, packet_id,
                       properties)  # fmt: skip


def _ack_reader(cls: type[Puback | Pubrec | Pubrel | Pubcomp], kind: PacketKind) -> Reader:
    allowed = (
        _PUBREL_REASONS if kind in (PacketKind.PUBREL, PacketKind.PUBCOMP) else _PUBACK_REASONS
    )
    name = kind.name

    def read(_flags: int, data: bytes, pos: int, end: int, version: int) -> Packet:
        packet_id, pos = _packet_id(data, pos, end, name)
        if pos == end:
            return cls(packet_id)
        if version == MQTT_3_1_1:
            raise malformed(f"{name} longer than 2 bytes")
        reason = _reason(data[pos], allowed, name)
        properties = NO_PROPERTIES
        if pos + 1 < end:
            properties, pos = read_properties(data, pos + 1, end, kind)
            _at_end(pos, end, name)
        return cls(packet_id, reason, properties)

    return read


def _options(byte: int, topic_filter: str, version: int) -> SubscriptionOptions:
    qos = byte & 3
    if qos == 3:
        raise malformed(f"SUBSCRIBE to {topic_filter!r} asks for QoS 3")
    if version == MQTT_3_1_1:
        if byte & 0xFC:
            raise malformed("SUBSCRIBE options reserved bits are set")  # 3.1.1 [MQTT-3.8.3-4]
        return SubscriptionOptions(qos)
    if byte & 0xC0:
        raise malformed("SUBSCRIBE options reserved bits are set")  # [MQTT-3.8.3-5]
    retain_handling = (byte >> 4) & 3
    if retain_handling == 3:
        raise protocol_error("SUBSCRIBE retain handling is 3")
    no_local = bool(byte & 0x04)
    if no_local and topic_filter.startswith("$share/"):
        raise protocol_error("No Local on a shared subscription")  # [MQTT-3.8.3-4]
    return SubscriptionOptions(qos, no_local, bool(byte & 0x08), retain_handling)


def _head(
    data: bytes, pos: int, end: int, version: int, kind: PacketKind
) -> tuple[int, Properties, int]:
    """Packet identifier and (5.0) properties, the variable header of most packets."""
    packet_id, pos = _packet_id(data, pos, end, kind.name)
    properties = NO_PROPERTIES
    if version == MQTT_5:
        properties, pos = read_properties(data, pos, end, kind)
    return packet_id, properties, pos


def decode_subscribe(_flags: int, data: bytes, pos: int, end: int, version: int) -> Subscribe:
    packet_id, properties, pos = _head(data, pos, end, version, PacketKind.SUBSCRIBE)
    subscriptions: list[tuple[str, SubscriptionOptions]] = []
    while pos < end:
        topic_filter, pos = read_string(data, pos, end)
        byte, pos = read_byte(data, pos, end)
        subscriptions.append((topic_filter, _options(byte, topic_filter, version)))
    if not subscriptions:
        raise protocol_error("SUBSCRIBE without a topic filter")  # [MQTT-3.8.3-2]
    return Subscribe(packet_id, tuple(subscriptions), properties)


def decode_suback(_flags: int, data: bytes, pos: int, end: int, version: int) -> Suback:
    packet_id, properties, pos = _head(data, pos, end, version, PacketKind.SUBACK)
    allowed = _SUBACK_RETURN_CODES_311 if version == MQTT_3_1_1 else _SUBACK_REASONS
    codes = tuple(_reason(code, allowed, "SUBACK") for code in data[pos:end])
    if not codes:
        raise protocol_error("SUBACK without a reason code")
    return Suback(packet_id, codes, properties)


def decode_unsubscribe(_flags: int, data: bytes, pos: int, end: int, version: int) -> Unsubscribe:
    packet_id, properties, pos = _head(data, pos, end, version, PacketKind.UNSUBSCRIBE)
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = read_string(data, pos, end)
        filters.append(topic_filter)
    if not filters:
        raise protocol_error("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id, tuple(filters), properties)


def decode_unsuback(_flags: int, data: bytes, pos: int, end: int, version: int) -> Unsuback:
    packet_id, properties, pos = _head(data, pos, end, version, PacketKind.UNSUBACK)
    if version == MQTT_3_1_1:
        _at_end(pos, end, "UNSUBACK")
        return Unsuback(packet_id)
    codes = tuple(_reason(code, _UNSUBACK_REASONS, "UNSUBACK") for code in data[pos:end])
    if not codes:
        raise protocol_error("UNSUBACK without a reason code")
    return Unsuback(packet_id, codes, properties)


def decode_pingreq(_flags: int, _data: bytes, pos: int, end: int, _version: int) -> Pingreq:
    _at_end(pos, end, "PINGREQ")
    return Pingreq()


def decode_pingresp(_flags: int, _data: bytes, pos: int, end: int, _version: int) -> Pingresp:
    _at_end(pos, end, "PINGRESP")
    return Pingresp()


def _reason_and_properties(
    data: bytes, pos: int, end: int, allowed: frozenset[ReasonCode], kind: PacketKind
) -> tuple[ReasonCode, Properties]:
    """DISCONNECT and AUTH: both reason code and properties may be left out (§3.14.2, §3.15.2)."""
    if pos == end:
        return ReasonCode.SUCCESS, NO_PROPERTIES
    reason = _reason(data[pos], allowed, kind.name)
    if pos + 1 == end:
        return reason, NO_PROPERTIES
    properties, pos = read_properties(data, pos + 1, end, kind)
    _at_end(pos, end, kind.name)
    return reason, properties


def decode_disconnect(_flags: int, data: bytes, pos: int, end: int, version: int) -> Disconnect:
    if version == MQTT_3_1_1:
        _at_end(pos, end, "DISCONNECT")
        return Disconnect()
    reason, properties = _reason_and_properties(
        data, pos, end, _DISCONNECT_REASONS, PacketKind.DISCONNECT
    )
    return Disconnect(reason, properties)


def decode_auth(_flags: int, data: bytes, pos: int, end: int, _version: int) -> Auth:
    reason, properties = _reason_and_properties(data, pos, end, _AUTH_REASONS, PacketKind.AUTH)
    return Auth(reason, properties)


# Indexed by packet type (§2.1.2); type 0 is reserved.
READERS: Final[tuple[Reader | None, ...]] = (
    None,
    decode_connect,
    decode_connack,
    decode_publish,
    _ack_reader(Puback, PacketKind.PUBACK),
    _ack_reader(Pubrec, PacketKind.PUBREC),
    _ack_reader(Pubrel, PacketKind.PUBREL),
    _ack_reader(Pubcomp, PacketKind.PUBCOMP),
    decode_subscribe,
    decode_suback,
    decode_unsubscribe,
    decode_unsuback,
    decode_pingreq,
    decode_pingresp,
    decode_disconnect,
    decode_auth,
)
