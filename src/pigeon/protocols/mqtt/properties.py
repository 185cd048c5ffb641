"""MQTT 5.0 properties (§2.2.2): one typed field per property identifier.

A field left at ``None`` (or an empty tuple for the two repeatable ones) was not
sent. The table :data:`PROPERTY_SPECS` says, per identifier, its field, its wire
type and the packets it may appear in (§2.2.2.2, table 2-4); the codec reads and
writes properties from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, cast

from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode, malformed, protocol_error
from pigeon.protocols.mqtt.wire import (
    encode_binary,
    encode_string,
    encode_varint,
    pack_u16,
    pack_u32,
    read_binary,
    read_byte,
    read_string,
    read_u16,
    read_u32,
    read_varint,
)


class PropertyType(IntEnum):
    """Wire types of property values (§1.5)."""

    BYTE = 1
    TWO_BYTE = 2
    FOUR_BYTE = 3
    VARINT = 4
    UTF8 = 5
    BINARY = 6
    UTF8_PAIR = 7
    BOOL = 8  # a Byte that must be 0 or 1, exposed as bool


@dataclass(frozen=True, slots=True)
class Properties:
    """The properties of one MQTT 5.0 packet; ``Properties()`` means none."""

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    # Repeatable in PUBLISH (one per matching subscription), at most one in SUBSCRIBE.
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: bool | None = None
    will_delay_interval: int | None = None
    request_response_information: bool | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: bool | None = None
    # Name/value pairs in the order sent; a name may repeat (§3.1.2.11.8).
    user_properties: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: bool | None = None
    subscription_identifier_available: bool | None = None
    shared_subscription_available: bool | None = None


NO_PROPERTIES: Final = Properties()


class PacketKind(IntEnum):
    """MQTT control packet types (§2.1.2), plus WILL for the CONNECT will properties."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15
    WILL = 16  # not a packet: the will properties inside CONNECT (§3.1.3.2)


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One row of table 2-4: identifier, field of :class:`Properties`, type, where allowed."""

    identifier: int
    field: str
    kind: PropertyType
    allowed_in: frozenset[PacketKind]

    @property
    def repeatable(self) -> bool:
        """User properties may repeat; subscription identifiers may repeat in PUBLISH."""
        return self.field in ("user_properties", "subscription_identifiers")


_K = PacketKind
_ACKS = (_K.PUBACK, _K.PUBREC, _K.PUBREL, _K.PUBCOMP)
_WITH_REASON_STRING = (_K.CONNACK, *_ACKS, _K.SUBACK, _K.UNSUBACK, _K.DISCONNECT, _K.AUTH)
_ALL_WITH_PROPERTIES = (
    _K.CONNECT,
    _K.CONNACK,
    _K.PUBLISH,
    _K.WILL,
    *_ACKS,
    _K.SUBSCRIBE,
    _K.SUBACK,
    _K.UNSUBSCRIBE,
    _K.UNSUBACK,
    _K.DISCONNECT,
    _K.AUTH,
)
_T = PropertyType


def _spec(identifier: int, field: str, kind: PropertyType, *where: PacketKind) -> PropertySpec:
    return PropertySpec(identifier, field, kind, frozenset(where))


PROPERTY_SPECS: Final[dict[int, PropertySpec]] = {
    s.identifier: s
    for s in (
        _spec(0x01, "payload_format_indicator", _T.BYTE, _K.PUBLISH, _K.WILL),
        _spec(0x02, "message_expiry_interval", _T.FOUR_BYTE, _K.PUBLISH, _K.WILL),
        _spec(0x03, "content_type", _T.UTF8, _K.PUBLISH, _K.WILL),
        _spec(0x08, "response_topic", _T.UTF8, _K.PUBLISH, _K.WILL),
        _spec(0x09, "correlation_data", _T.BINARY, _K.PUBLISH, _K.WILL),
        _spec(0x0B, "subscription_identifiers", _T.VARINT, _K.PUBLISH, _K.SUBSCRIBE),
        _spec(0x11, "session_expiry_interval", _T.FOUR_BYTE, _K.CONNECT, _K.CONNACK, _K.DISCONNECT),
        _spec(0x12, "assigned_client_identifier", _T.UTF8, _K.CONNACK),
        _spec(0x13, "server_keep_alive", _T.TWO_BYTE, _K.CONNACK),
        _spec(0x15, "authentication_method", _T.UTF8, _K.CONNECT, _K.CONNACK, _K.AUTH),
        _spec(0x16, "authentication_data", _T.BINARY, _K.CONNECT, _K.CONNACK, _K.AUTH),
        _spec(0x17, "request_problem_information", _T.BOOL, _K.CONNECT),
        _spec(0x18, "will_delay_interval", _T.FOUR_BYTE, _K.WILL),
        _spec(0x19, "request_response_information", _T.BOOL, _K.CONNECT),
        _spec(0x1A, "response_information", _T.UTF8, _K.CONNACK),
        _spec(0x1C, "server_reference", _T.UTF8, _K.CONNACK, _K.DISCONNECT),
        _spec(0x1F, "reason_string", _T.UTF8, *_WITH_REASON_STRING),
        _spec(0x21, "receive_maximum", _T.TWO_BYTE, _K.CONNECT, _K.CONNACK),
        _spec(0x22, "topic_alias_maximum", _T.TWO_BYTE, _K.CONNECT, _K.CONNACK),
        _spec(0x23, "topic_alias", _T.TWO_BYTE, _K.PUBLISH),
        _spec(0x24, "maximum_qos", _T.BYTE, _K.CONNACK),
        _spec(0x25, "retain_available", _T.BOOL, _K.CONNACK),
        _spec(0x26, "user_properties", _T.UTF8_PAIR, *_ALL_WITH_PROPERTIES),
        _spec(0x27, "maximum_packet_size", _T.FOUR_BYTE, _K.CONNECT, _K.CONNACK),
        _spec(0x28, "wildcard_subscription_available", _T.BOOL, _K.CONNACK),
        _spec(0x29, "subscription_identifier_available", _T.BOOL, _K.CONNACK),
        _spec(0x2A, "shared_subscription_available", _T.BOOL, _K.CONNACK),
    )
}


# Values the standard fixes: 0/1 flags are checked through PropertyType.BOOL; these
# may not be zero (§3.1.2.11.3, §3.1.2.11.4, §3.3.2.3.4, §3.3.2.3.8).
_NON_ZERO: Final = frozenset(
    {"receive_maximum", "maximum_packet_size", "topic_alias", "subscription_identifiers"}
)
_ZERO_OR_ONE: Final = frozenset({"payload_format_indicator", "maximum_qos"})
_SPECS_IN_ORDER: Final = tuple(sorted(PROPERTY_SPECS.values(), key=lambda s: s.identifier))


def _read_value(
    spec: PropertySpec, data: bytes, pos: int, end: int
) -> tuple[int | str | bytes | bool | tuple[str, str], int]:
    kind = spec.kind
    if kind is PropertyType.BYTE or kind is PropertyType.BOOL:
        value, pos = read_byte(data, pos, end)
        if value > 1 and (kind is PropertyType.BOOL or spec.field in _ZERO_OR_ONE):
            raise protocol_error(f"property {spec.field} must be 0 or 1, got {value}")
        return (bool(value) if kind is PropertyType.BOOL else value), pos
    if kind is PropertyType.TWO_BYTE:
        return read_u16(data, pos, end)
    if kind is PropertyType.FOUR_BYTE:
        return read_u32(data, pos, end)
    if kind is PropertyType.VARINT:
        return read_varint(data, pos, end)
    if kind is PropertyType.UTF8:
        return read_string(data, pos, end)
    if kind is PropertyType.BINARY:
        return read_binary(data, pos, end)
    name, pos = read_string(data, pos, end)
    text, pos = read_string(data, pos, end)
    return (name, text), pos


def _check_together(found: dict[str, object]) -> None:
    if "authentication_data" in found and "authentication_method" not in found:
        # 5.0 §3.1.2.11.10, §3.2.2.3.17, §3.15.2.2.3
        raise protocol_error("Authentication Data without an Authentication Method")
    topic = found.get("response_topic")
    if isinstance(topic, str) and ("+" in topic or "#" in topic or not topic):
        # [MQTT-3.3.2-14]: the Response Topic is a topic name, without wildcards.
        raise protocol_error(f"Response Topic {topic!r} is not a topic name")


def read_properties(data: bytes, pos: int, end: int, where: PacketKind) -> tuple[Properties, int]:
    """The property length and properties of one packet (§2.2.2), checked against table 2-4."""
    length, pos = read_varint(data, pos, end)
    if length == 0:
        return NO_PROPERTIES, pos
    stop = pos + length
    if stop > end:
        raise malformed(f"property length {length} runs past the end of the packet")
    found: dict[str, object] = {}
    pairs: list[tuple[str, str]] = []
    identifiers: list[int] = []
    while pos < stop:
        identifier, pos = read_varint(data, pos, stop)
        spec = PROPERTY_SPECS.get(identifier)
        if spec is None:
            raise malformed(f"unknown property identifier 0x{identifier:02X}")
        if where not in spec.allowed_in:
            # §2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
            raise malformed(f"property {spec.field} is not allowed in {where.name}")
        value, pos = _read_value(spec, data, pos, stop)
        if value == 0 and spec.field in _NON_ZERO:
            if spec.field == "topic_alias":  # [MQTT-3.3.2-8]; §3.3.2.3.4 names 0x94 for it
                raise ProtocolViolation(ReasonCode.TOPIC_ALIAS_INVALID, "topic alias 0")
            raise protocol_error(f"property {spec.field} must not be 0")
        if spec.field == "user_properties":
            pairs.append(value)  # type: ignore[arg-type]
        elif spec.field == "subscription_identifiers" and where is PacketKind.PUBLISH:
            identifiers.append(value)  # type: ignore[arg-type]
        elif spec.field in found or (spec.field == "subscription_identifiers" and identifiers):
            raise protocol_error(f"property {spec.field} appears more than once")
        elif spec.field == "subscription_identifiers":
            identifiers.append(value)  # type: ignore[arg-type]
        else:
            found[spec.field] = value
    _check_together(found)
    if pairs:
        found["user_properties"] = tuple(pairs)
    if identifiers:
        found["subscription_identifiers"] = tuple(identifiers)
    return Properties(**found), pos  # type: ignore[arg-type]


def _encode_value(kind: PropertyType, value: object) -> bytes:
    if kind is PropertyType.BYTE or kind is PropertyType.BOOL:
        return bytes((int(value),))  # type: ignore[call-overload]
    if kind is PropertyType.TWO_BYTE:
        return pack_u16(value)
    if kind is PropertyType.FOUR_BYTE:
        return pack_u32(value)
    if kind is PropertyType.VARINT:
        return encode_varint(value)  # type: ignore[arg-type]
    if kind is PropertyType.UTF8:
        return encode_string(value)  # type: ignore[arg-type]
    if kind is PropertyType.BINARY:
        return encode_binary(value)  # type: ignore[arg-type]
    name, text = cast("tuple[str, str]", value)
    return encode_string(name) + encode_string(text)


def encode_properties(properties: Properties) -> bytes:
    """Property length and properties, in identifier order (any order is valid on the wire)."""
    if properties is NO_PROPERTIES:
        return b"\x00"
    parts: list[bytes] = []
    for spec in _SPECS_IN_ORDER:
        value = getattr(properties, spec.field)
        if value is None:
            continue
        head = bytes((spec.identifier,))
        if spec.repeatable:
            parts.extend(head + _encode_value(spec.kind, item) for item in value)
        else:
            parts.append(head + _encode_value(spec.kind, value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body
