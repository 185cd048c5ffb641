"""Reason codes and the 3.1.1 return codes they map to (3.1.1 §3.2.2.3, §3.9.3)."""

from __future__ import annotations

import pytest

from pigeon.protocols.mqtt.reasons import (
    ConnackReturnCode,
    ProtocolViolation,
    ReasonCode,
    connack_return_code,
    reason_from_connack_return_code,
    suback_return_code,
)


@pytest.mark.parametrize("code", list(ConnackReturnCode))
def test_each_3_1_1_return_code_survives_the_trip_through_a_reason(
    code: ConnackReturnCode,
) -> None:
    assert connack_return_code(reason_from_connack_return_code(code)) == code


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (ReasonCode.SUCCESS, 0),
        (ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, 1),
        (ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, 2),
        (ReasonCode.SERVER_UNAVAILABLE, 3),
        (ReasonCode.SERVER_BUSY, 3),
        (ReasonCode.BAD_USER_NAME_OR_PASSWORD, 4),
        (ReasonCode.NOT_AUTHORIZED, 5),
        (ReasonCode.BANNED, 5),
        (ReasonCode.MALFORMED_PACKET, 3),  # no 3.1.1 equivalent: "Server unavailable"
    ],
)
def test_5_0_connack_reasons_map_to_the_closest_return_code(reason: ReasonCode, code: int) -> None:
    assert connack_return_code(reason) == code


def test_return_codes_above_5_are_reserved() -> None:
    with pytest.raises(ValueError):
        reason_from_connack_return_code(6)


def test_suback_failures_all_become_0x80_in_3_1_1() -> None:
    assert [suback_return_code(ReasonCode(v)) for v in (0, 1, 2)] == [0, 1, 2]
    assert {suback_return_code(r) for r in ReasonCode if r.is_error} == {0x80}


def test_a_violation_says_what_and_which_reason() -> None:
    error = ProtocolViolation(ReasonCode.PROTOCOL_ERROR, "a second CONNECT")
    assert str(error) == "PROTOCOL_ERROR (0x82): a second CONNECT"
    assert error.reason == 0x82
    assert ReasonCode["NORMAL_DISCONNECTION"] is ReasonCode["GRANTED_QOS_0"] is ReasonCode(0)
