"""Packets to bytes for MQTT 3.1.1 and 5.0 (chapter 3 of each standard).

3.1.1 has no properties, no reason codes on acknowledgements, DISCONNECT or
UNSUBACK, and a subscription carries only its QoS: encoding for 3.1.1 leaves
those out. CONNACK and SUBACK reasons become the 3.1.1 return codes
(:mod:`pigeon.protocols.mqtt.reasons`). Programming errors (QoS 1 without a
packet identifier, AUTH for 3.1.1, a string over 65,535 bytes) raise ValueError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

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
)
from pigeon.protocols.mqtt.properties import NO_PROPERTIES, Properties, encode_properties
from pigeon.protocols.mqtt.reasons import ReasonCode, connack_return_code, suback_return_code
from pigeon.protocols.mqtt.wire import (
    encode_binary,
    encode_string,
    encode_varint,
    pack_u16,
)

_BYTES: Final = tuple(bytes((n,)) for n in range(256))
_PING_REQUEST: Final = b"\xc0\x00"
_PING_RESPONSE: Final = b"\xd0\x00"
_EMPTY_DISCONNECT: Final = b"\xe0\x00"
_EMPTY_AUTH: Final = b"\xf0\x00"
_NO_PROPERTIES_BYTE: Final = b"\x00"
# Encoded topic names with their length prefix; publishers reuse a few topics.
_TOPICS: dict[str, bytes] = {}
_TOPICS_KEPT: Final = 4096
_TOPIC_CACHED_BYTES: Final = 258  # short names only, so the cache stays small


def _frame(first: int, body: bytes) -> bytes:
    return _BYTES[first] + encode_varint(len(body)) + body


def _properties(properties: Properties, version: int) -> bytes:
    if version == MQTT_3_1_1:
        return b""
    if properties is NO_PROPERTIES:
        return _NO_PROPERTIES_BYTE
    return encode_properties(properties)


def _encode_publish(packet: Publish, version: int) -> bytes:
    return encode_publish(
        packet.topic,
        packet.payload,
        packet.qos,
        packet.packet_id,
        version,
        dup=packet.dup,
        retain=packet.retain,
        properties=packet.properties,
    )


def encode_publish(
    topic_name: str,
    payload: bytes,
    qos: int,
    packet_id: int | None,
    version: int,
    *,
    dup: bool = False,
    retain: bool = False,
    properties: Properties = NO_PROPERTIES,
) -> bytes:
    """A PUBLISH from its fields, without a :class:`Publish` (the delivery hot path)."""
    topic = _TOPICS.get(topic_name)
    if topic is None:
        topic = encode_string(topic_name)
        if len(topic) <= _TOPIC_CACHED_BYTES:
            if len(_TOPICS) >= _TOPICS_KEPT:
                _TOPICS.clear()
            _TOPICS[topic_name] = topic
    if qos:
        if not packet_id:
            raise ValueError(f"PUBLISH at QoS {qos} needs a packet identifier")
        topic += pack_u16(packet_id)
    if version == MQTT_5:
        topic += (
            _NO_PROPERTIES_BYTE if properties is NO_PROPERTIES else encode_properties(properties)
        )
    first = 0x30 | qos << 1 | dup << 3 | retain
    return _BYTES[first] + encode_varint(len(topic) + len(payload)) + topic + payload


def _encode_connect_flags(packet: Connect) -> int:
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    if will is not None:
        flags |= 0x04 | will.qos << 3 | will.retain << 5
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    return flags


def _encode_connect(packet: Connect, version: int) -> bytes:
    if packet.protocol_level != version:
        raise ValueError(f"CONNECT of level {packet.protocol_level} encoded as {version}")
    if version == MQTT_3_1_1 and packet.password is not None and packet.username is None:
        raise ValueError("MQTT 3.1.1 sends a password only with a user name [MQTT-3.1.2-22]")
    parts = [
        encode_string("MQTT"),
        bytes((version, _encode_connect_flags(packet))),
        pack_u16(packet.keepalive),
        _properties(packet.properties, version),
        encode_string(packet.client_id),
    ]
    if packet.will is not None:
        parts.append(_properties(packet.will.properties, version))
        parts.append(encode_string(packet.will.topic))
        parts.append(encode_binary(packet.will.payload))
    if packet.username is not None:
        parts.append(encode_string(packet.username))
    if packet.password is not None:
        parts.append(encode_binary(packet.password))
    return _frame(0x10, b"".join(parts))


def _encode_connack(packet: Connack, version: int) -> bytes:
    flags = _BYTES[packet.session_present]
    if version == MQTT_3_1_1:
        return b"\x20\x02" + flags + _BYTES[connack_return_code(packet.reason_code)]
    return _frame(
        0x20, flags + _BYTES[packet.reason_code] + _properties(packet.properties, version)
    )


def _encode_ack(packet: Puback | Pubrec | Pubrel | Pubcomp, version: int) -> bytes:
    first = 0x62 if type(packet) is Pubrel else packet.kind << 4
    head = pack_u16(packet.packet_id)
    properties = packet.properties
    if version == MQTT_3_1_1 or (
        packet.reason_code == ReasonCode.SUCCESS and properties is NO_PROPERTIES
    ):
        return _BYTES[first] + b"\x02" + head  # 5.0 §3.4.2.1: reason 0 may be left out
    if properties is NO_PROPERTIES:
        return _BYTES[first] + b"\x03" + head + _BYTES[packet.reason_code]
    return _frame(first, head + _BYTES[packet.reason_code] + encode_properties(properties))


def _options_byte(options: SubscriptionOptions, version: int) -> bytes:
    if version == MQTT_3_1_1:
        return _BYTES[options.qos]
    return _BYTES[
        options.qos
        | options.no_local << 2
        | options.retain_as_published << 3
        | options.retain_handling << 4
    ]


def _encode_subscribe(packet: Subscribe, version: int) -> bytes:
    parts = [pack_u16(packet.packet_id), _properties(packet.properties, version)]
    for topic_filter, options in packet.subscriptions:
        parts.append(encode_string(topic_filter))
        parts.append(_options_byte(options, version))
    return _frame(0x82, b"".join(parts))


def _encode_suback(packet: Suback, version: int) -> bytes:
    if version == MQTT_3_1_1:
        codes = bytes(suback_return_code(code) for code in packet.reason_codes)
    else:
        codes = bytes(packet.reason_codes)
    head = pack_u16(packet.packet_id) + _properties(packet.properties, version)
    return _frame(0x90, head + codes)


def _encode_unsubscribe(packet: Unsubscribe, version: int) -> bytes:
    parts = [pack_u16(packet.packet_id), _properties(packet.properties, version)]
    parts.extend(encode_string(topic_filter) for topic_filter in packet.topic_filters)
    return _frame(0xA2, b"".join(parts))


def _encode_unsuback(packet: Unsuback, version: int) -> bytes:
    if version == MQTT_3_1_1:
        return b"\xb0\x02" + pack_u16(packet.packet_id)
    head = pack_u16(packet.packet_id) + _properties(packet.properties, version)
    return _frame(0xB0, head + bytes(packet.reason_codes))


def _encode_reason_only(first: int, reason: ReasonCode, properties: Properties) -> bytes:
    """DISCONNECT and AUTH in 5.0: reason 0 without properties is an empty body."""
    if properties is not NO_PROPERTIES:
        return _frame(first, _BYTES[reason] + encode_properties(properties))
    if reason == ReasonCode.SUCCESS:
        return _BYTES[first] + b"\x00"
    return _BYTES[first] + b"\x01" + _BYTES[reason]


def _encode_disconnect(packet: Disconnect, version: int) -> bytes:
    if version == MQTT_3_1_1:
        return _EMPTY_DISCONNECT
    return _encode_reason_only(0xE0, packet.reason_code, packet.properties)


def _encode_auth(packet: Auth, version: int) -> bytes:
    if version == MQTT_3_1_1:
        raise ValueError("AUTH does not exist in MQTT 3.1.1")
    return _encode_reason_only(0xF0, packet.reason_code, packet.properties)


_ENCODERS: Final[dict[type[Any], Callable[[Any, int], bytes]]] = {
    Connect: _encode_connect,
    Connack: _encode_connack,
    Puback: _encode_ack,
    Pubrec: _encode_ack,
    Pubrel: _encode_ack,
    Pubcomp: _encode_ack,
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_unsuback,
    Pingreq: lambda _packet, _version: _PING_REQUEST,
    Pingresp: lambda _packet, _version: _PING_RESPONSE,
    Disconnect: _encode_disconnect,
    Auth: _encode_auth,
}


def encode(packet: Packet, version: int) -> bytes:
    """The bytes of ``packet`` in MQTT 3.1.1 (``version=4``) or 5.0 (``version=5``)."""
    if type(packet) is Publish:
        return _encode_publish(packet, version)
    if version != MQTT_3_1_1 and version != MQTT_5:
        raise ValueError(f"MQTT protocol level {version} is not supported")
    return _ENCODERS[type(packet)](packet, version)
