"""Hypothesis strategies building valid MQTT packets for either version.

The reason codes allowed per packet are written out here from the standard
(MQTT 5.0 §3.x.2.1 tables), independently of the codec's own tables.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    NO_PROPERTIES,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketKind,
    Pingreq,
    Pingresp,
    Properties,
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
)
from pigeon.protocols.mqtt.reasons import ReasonCode

# MQTT strings: any Unicode scalar but U+0000 (surrogates cannot be encoded) [MQTT-1.5.4-1,2].
mqtt_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)
topic_names = mqtt_text.filter(lambda t: t and "+" not in t and "#" not in t)
packet_ids = st.integers(1, 65_535)
u16 = st.integers(0, 65_535)
u32 = st.integers(0, 2**32 - 1)

CONNACK_5: tuple[int, ...] = (
    0x00,
    0x80,
    0x81,
    0x82,
    0x83,
    0x84,
    0x85,
    0x86,
    0x87,
    0x88,
    0x89,
    0x8A,
    0x8C,
)
CONNACK_5 += (0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
CONNACK_311 = (0x00, 0x84, 0x85, 0x88, 0x86, 0x87)  # the six 3.1.1 return codes, as reasons
PUBACK_5 = (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
PUBREL_5 = (0x00, 0x92)
SUBACK_5 = (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
SUBACK_311 = (0x00, 0x01, 0x02, 0x80)
UNSUBACK_5 = (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
DISCONNECT_5: tuple[int, ...] = (
    0x00,
    0x04,
    0x80,
    0x81,
    0x82,
    0x83,
    0x87,
    0x89,
    0x8B,
    0x8D,
    0x8E,
    0x8F,
    0x90,
)
DISCONNECT_5 += (0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F)
DISCONNECT_5 += (0xA0, 0xA1, 0xA2)
AUTH_5 = (0x00, 0x18, 0x19)


def reasons(values: tuple[int, ...]) -> st.SearchStrategy[ReasonCode]:
    return st.sampled_from([ReasonCode(v) for v in values])


_K = PacketKind
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": st.integers(0, 1),
    "message_expiry_interval": u32,
    "content_type": mqtt_text,
    "response_topic": topic_names,
    "correlation_data": st.binary(max_size=8),
    "session_expiry_interval": u32,
    "assigned_client_identifier": mqtt_text,
    "server_keep_alive": u16,
    "authentication_method": mqtt_text,
    "authentication_data": st.binary(max_size=8),
    "request_problem_information": st.booleans(),
    "will_delay_interval": u32,
    "request_response_information": st.booleans(),
    "response_information": mqtt_text,
    "server_reference": mqtt_text,
    "reason_string": mqtt_text,
    "receive_maximum": st.integers(1, 65_535),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 65_535),
    "maximum_qos": st.integers(0, 1),
    "retain_available": st.booleans(),
    "user_properties": st.lists(st.tuples(mqtt_text, mqtt_text), max_size=3).map(tuple),
    "maximum_packet_size": st.integers(1, 2**32 - 1),
    "wildcard_subscription_available": st.booleans(),
    "subscription_identifier_available": st.booleans(),
    "shared_subscription_available": st.booleans(),
}
# Table 2-4 of MQTT 5.0, written out again: which property each packet may carry.
ALLOWED: dict[PacketKind, tuple[str, ...]] = {
    _K.CONNECT: tuple(
        [
            "session_expiry_interval",
            "authentication_method",
            "authentication_data",
            "request_problem_information",
            "request_response_information",
            "receive_maximum",
            "topic_alias_maximum",
            "user_properties",
            "maximum_packet_size",
        ]
    ),
    _K.WILL: tuple(
        [
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "will_delay_interval",
            "user_properties",
        ]
    ),
    _K.PUBLISH: tuple(
        [
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "topic_alias",
            "user_properties",
        ]
    ),
    _K.CONNACK: tuple(
        [
            "session_expiry_interval",
            "assigned_client_identifier",
            "server_keep_alive",
            "authentication_method",
            "authentication_data",
            "response_information",
            "server_reference",
            "reason_string",
            "receive_maximum",
            "topic_alias_maximum",
            "maximum_qos",
            "retain_available",
            "user_properties",
            "maximum_packet_size",
            "wildcard_subscription_available",
            "subscription_identifier_available",
            "shared_subscription_available",
        ]
    ),
    _K.SUBSCRIBE: ("user_properties",),
    _K.UNSUBSCRIBE: ("user_properties",),
    _K.DISCONNECT: (
        "session_expiry_interval",
        "server_reference",
        "reason_string",
        "user_properties",
    ),
    _K.AUTH: ("authentication_method", "authentication_data", "reason_string", "user_properties"),
}
for _kind in (_K.PUBACK, _K.PUBREC, _K.PUBREL, _K.PUBCOMP, _K.SUBACK, _K.UNSUBACK):
    ALLOWED[_kind] = ("reason_string", "user_properties")


@st.composite
def properties(draw: st.DrawFn, kind: PacketKind, from_client: bool = False) -> Properties:
    names = draw(st.lists(st.sampled_from(ALLOWED[kind]), unique=True, max_size=4))
    if "authentication_data" in names and "authentication_method" not in names:
        names.append("authentication_method")  # data needs its method (5.0 §3.1.2.11.10)
    values = {name: draw(_VALUES[name]) for name in names}
    # A client never sends a Subscription Identifier in PUBLISH [MQTT-3.3.4-6].
    if kind is _K.PUBLISH and not from_client and draw(st.booleans()):
        values["subscription_identifiers"] = tuple(
            draw(st.lists(st.integers(1, 268_435_455), min_size=1, max_size=3))
        )
    if kind is _K.SUBSCRIBE and draw(st.booleans()):
        values["subscription_identifiers"] = (draw(st.integers(1, 268_435_455)),)
    return Properties(**values)


def _props(version: int, kind: PacketKind) -> st.SearchStrategy[Properties]:
    return properties(kind) if version == MQTT_5 else st.just(NO_PROPERTIES)


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    will = None
    if draw(st.booleans()):
        will = Will(
            draw(mqtt_text),
            draw(st.binary(max_size=16)),
            draw(st.integers(0, 2)),
            draw(st.booleans()),
            draw(_props(version, _K.WILL)),
        )
    username = draw(st.none() | mqtt_text)
    password = draw(st.none() | st.binary(max_size=8))
    if version == MQTT_3_1_1 and username is None:
        password = None  # 3.1.1 [MQTT-3.1.2-22]
    return Connect(
        version,
        draw(mqtt_text),
        draw(st.booleans()),
        draw(u16),
        username,
        password,
        will,
        draw(_props(version, _K.CONNECT)),
    )


@st.composite
def publishes(draw: st.DrawFn, version: int, from_client: bool) -> Publish:
    qos = draw(st.integers(0, 2))
    five = version == MQTT_5
    props = draw(properties(_K.PUBLISH, from_client)) if five else NO_PROPERTIES
    topic = draw(topic_names | st.just("")) if props.topic_alias else draw(topic_names)
    return Publish(
        topic,
        draw(st.binary(max_size=64)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(packet_ids) if qos else None,
        props,
    )


@st.composite
def subscribes(draw: st.DrawFn, version: int) -> Subscribe:
    entries = []
    for topic_filter in draw(st.lists(mqtt_text, min_size=1, max_size=4)):
        if version == MQTT_3_1_1:
            options = SubscriptionOptions(draw(st.integers(0, 2)))
        else:
            no_local = draw(st.booleans()) and not topic_filter.startswith("$share/")
            options = SubscriptionOptions(
                draw(st.integers(0, 2)), no_local, draw(st.booleans()), draw(st.integers(0, 2))
            )
        entries.append((topic_filter, options))
    return Subscribe(draw(packet_ids), tuple(entries), draw(_props(version, _K.SUBSCRIBE)))


def _ack(cls: Any, kind: PacketKind, codes: tuple[int, ...], version: int) -> Any:
    if version == MQTT_3_1_1:
        return st.builds(cls, packet_ids)
    return st.builds(cls, packet_ids, reasons(codes), properties(kind))


def client_packets(version: int) -> st.SearchStrategy[Packet]:
    """Packets a client sends after CONNECT."""
    five = version == MQTT_5
    choices: list[st.SearchStrategy[Any]] = [
        publishes(version, from_client=True),
        _ack(Puback, _K.PUBACK, PUBACK_5, version),
        _ack(Pubrec, _K.PUBREC, PUBACK_5, version),
        _ack(Pubrel, _K.PUBREL, PUBREL_5, version),
        _ack(Pubcomp, _K.PUBCOMP, PUBREL_5, version),
        subscribes(version),
        st.builds(
            Unsubscribe,
            packet_ids,
            st.lists(mqtt_text, min_size=1, max_size=4).map(tuple),
            _props(version, _K.UNSUBSCRIBE),
        ),
        st.just(Pingreq()),
        st.builds(Disconnect, reasons(DISCONNECT_5), properties(_K.DISCONNECT))
        if five
        else st.just(Disconnect()),
    ]
    if five:
        choices.append(st.builds(Auth, reasons(AUTH_5), properties(_K.AUTH)))
    return st.one_of(choices)


def server_packets(version: int) -> st.SearchStrategy[Packet]:
    """Packets a server sends."""
    five = version == MQTT_5
    choices: list[st.SearchStrategy[Any]] = [
        st.builds(
            Connack,
            st.booleans(),
            reasons(CONNACK_5 if five else CONNACK_311),
            _props(version, _K.CONNACK),
        ),
        publishes(version, from_client=False),
        _ack(Puback, _K.PUBACK, PUBACK_5, version),
        _ack(Pubrel, _K.PUBREL, PUBREL_5, version),
        st.builds(
            Suback,
            packet_ids,
            st.lists(reasons(SUBACK_5 if five else SUBACK_311), min_size=1, max_size=4).map(tuple),
            _props(version, _K.SUBACK),
        ),
        st.builds(
            Unsuback,
            packet_ids,
            st.lists(reasons(UNSUBACK_5), min_size=1, max_size=4).map(tuple),
            properties(_K.UNSUBACK),
        )
        if five
        else st.builds(Unsuback, packet_ids),
        st.just(Pingresp()),
    ]
    if five:
        choices.append(st.builds(Disconnect, reasons(DISCONNECT_5), properties(_K.DISCONNECT)))
        choices.append(st.builds(Auth, reasons(AUTH_5), properties(_K.AUTH)))
    return st.one_of(choices)


versions = st.sampled_from([MQTT_3_1_1, MQTT_5])


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[int, list[Packet]]:
    """A CONNECT and what a client sends after it, as one version."""
    version = draw(versions)
    rest = draw(st.lists(client_packets(version), max_size=6))
    return version, [draw(connects(version)), *rest]
