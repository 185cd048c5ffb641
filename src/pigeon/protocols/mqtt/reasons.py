"""MQTT reason codes, the 3.1.1 return codes, and the error every decoding failure raises.

One vocabulary for both versions: packets carry a :class:`ReasonCode` (MQTT 5.0
§2.4); the codec turns it into a 3.1.1 CONNACK return code (3.1.1 §3.2.2.3) or
SUBACK return code (3.1.1 §3.9.3) on the way out and back on the way in, with
the two tables below.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pigeon.protocols.mqtt.packets import Packet


class ReasonCode(IntEnum):
    """MQTT 5.0 reason codes (§2.4, table 2-6). Several names share a value."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

    @property
    def is_error(self) -> bool:
        """Values of 0x80 and above are failures (§2.4)."""
        return self.value >= 0x80


class ConnackReturnCode(IntEnum):
    """MQTT 3.1.1 CONNACK return codes (§3.2.2.3, table 3.1)."""

    ACCEPTED = 0x00
    UNACCEPTABLE_PROTOCOL_VERSION = 0x01
    IDENTIFIER_REJECTED = 0x02
    SERVER_UNAVAILABLE = 0x03
    BAD_USER_NAME_OR_PASSWORD = 0x04
    NOT_AUTHORIZED = 0x05


# 3.1.1 SUBACK "Failure" return code (§3.9.3); the same value as 5.0's Unspecified error.
SUBACK_FAILURE = 0x80

_TO_RETURN_CODE: dict[ReasonCode, ConnackReturnCode] = {
    ReasonCode.SUCCESS: ConnackReturnCode.ACCEPTED,
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: ConnackReturnCode.IDENTIFIER_REJECTED,
    ReasonCode.SERVER_UNAVAILABLE: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.SERVER_BUSY: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.SERVER_SHUTTING_DOWN: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.USE_ANOTHER_SERVER: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.SERVER_MOVED: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.CONNECTION_RATE_EXCEEDED: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.QUOTA_EXCEEDED: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD,
    ReasonCode.BAD_AUTHENTICATION_METHOD: ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD,
    ReasonCode.NOT_AUTHORIZED: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.BANNED: ConnackReturnCode.NOT_AUTHORIZED,
}

_FROM_RETURN_CODE: dict[ConnackReturnCode, ReasonCode] = {
    ConnackReturnCode.ACCEPTED: ReasonCode.SUCCESS,
    ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION: ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ConnackReturnCode.IDENTIFIER_REJECTED: ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    ConnackReturnCode.SERVER_UNAVAILABLE: ReasonCode.SERVER_UNAVAILABLE,
    ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD: ReasonCode.BAD_USER_NAME_OR_PASSWORD,
    ConnackReturnCode.NOT_AUTHORIZED: ReasonCode.NOT_AUTHORIZED,
}


def connack_return_code(reason: ReasonCode) -> ConnackReturnCode:
    """The 3.1.1 return code closest to a 5.0 CONNACK reason (3.1.1 has six).

    Any other failure becomes "Server unavailable", the generic refusal of 3.1.1.
    """
    return _TO_RETURN_CODE.get(reason, ConnackReturnCode.SERVER_UNAVAILABLE)


def reason_from_connack_return_code(code: int) -> ReasonCode:
    """The 5.0 reason for a 3.1.1 CONNACK return code; values above 5 are reserved."""
    return _FROM_RETURN_CODE[ConnackReturnCode(code)]


def suback_return_code(reason: ReasonCode) -> int:
    """3.1.1 SUBACK knows granted QoS 0..2 and 0x80 Failure; every 5.0 failure maps to 0x80."""
    return SUBACK_FAILURE if reason >= 0x80 else int(reason)


class ProtocolViolation(Exception):
    """Input that breaks the MQTT standard; the only exception the decoder raises.

    ``reason`` is what a 5.0 server answers with (CONNACK or DISCONNECT reason
    code; MALFORMED_PACKET, PROTOCOL_ERROR or PACKET_TOO_LARGE from the codec),
    ``text`` says what was wrong for the log. A 3.1.1 server closes the
    connection (§4.8), except for a CONNECT it can still answer with a return
    code (see :func:`connack_return_code`).
    """

    def __init__(self, reason: ReasonCode, text: str) -> None:
        super().__init__(f"{reason.name} (0x{reason.value:02X}): {text}")
        self.reason = reason
        self.text = text
        # Set by Decoder.feed: the good packets before the bad one in the same call.
        self.packets: tuple[Packet, ...] = ()


def malformed(text: str) -> ProtocolViolation:
    """A Malformed Packet (0x81): the bytes cannot be parsed as the standard lays them out."""
    return ProtocolViolation(ReasonCode.MALFORMED_PACKET, text)


def protocol_error(text: str) -> ProtocolViolation:
    """A Protocol Error (0x82): well-formed bytes the standard forbids here."""
    return ProtocolViolation(ReasonCode.PROTOCOL_ERROR, text)
