"""The storage codec: exact round trips, and damage raises CodecError, nothing else."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.core.message import Long, Message, Properties
from pigeon.storage.codec import (
    CodecError,
    decode_message,
    decode_value,
    encode_message,
    encode_value,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.none() | st.just(UTC))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
# Every @given here runs with deadline=None: these are not timings, and a
# loaded CI machine must not turn a slow example into a failure.


@settings(deadline=None)
@given(values)
def test_every_value_round_trips(value: Any) -> None:
    back = decode_value(encode_value(value))
    assert back == value
    assert type(back) is type(value)


def test_types_that_equal_each_other_stay_apart() -> None:
    # 1 == True == 1.0 == Decimal(1) in Python; the store must keep which it was.
    table = {"b": True, "i": 1, "f": 1.0, "d": Decimal("1.00"), "z": 0, "n": None}
    back = decode_value(encode_value(table))
    assert [type(v) for v in back.values()] == [bool, int, float, Decimal, int, type(None)]
    assert str(back["d"]) == "1.00"


def test_big_ints_surrogates_and_zones() -> None:
    tz = timezone(timedelta(hours=-5))
    value = [2**200, -(2**200), "\udcff raw", datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=tz)]
    assert decode_value(encode_value(value)) == value


def test_tuples_come_back_as_lists_and_other_types_are_refused() -> None:
    assert decode_value(encode_value((1, 2))) == [1, 2]
    with pytest.raises(TypeError):
        encode_value({1: "non-str key"})
    with pytest.raises(TypeError):
        encode_value(object())


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_codec_error_only(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_value(data)


@settings(deadline=None)
@given(values, st.data())
def test_any_single_byte_change_is_caught_or_decodes(value: Any, data: st.DataObject) -> None:
    raw = bytearray(encode_value(value))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(CodecError):
        decode_value(bytes(raw))


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = b"\x01" + b"l\x00\x00\x00\x01" * 10_000 + b"N"
    with pytest.raises(CodecError):
        decode_value(deep)


def test_message_round_trip_with_every_property() -> None:
    props = Properties(
        content_type="application/json",
        content_encoding="gzip",
        headers=(
            ("nested", {"t": [1, b"\x00\xff", Decimal("3.14")]}),
            ("none", None),
            ("nested", Long(7)),
        ),
        durable=True,
        priority=9,
        correlation_id=b"c",
        reply_to="r",
        ttl=60000,
        message_id=b"id\xff",
        timestamp=1_700_000_000,
        type="t",
        user_id="guest",
        app_id="app",
        annotations=(("amqp091.cluster_id", "cl"),),
    )
    msg = decode_message(encode_message(Message("x", "k", props, b"")), b"body")
    assert (msg.exchange, msg.routing_key, msg.properties, msg.body) == ("x", "k", props, b"body")
    assert type(msg.properties.headers[2][1]) is Long


def test_a_value_that_is_not_a_message_is_refused() -> None:
    with pytest.raises(CodecError):
        decode_message(encode_value(["x", "k", [None]]), b"")
    with pytest.raises(CodecError):
        decode_message(encode_value({"not": "a message"}), b"")
    with pytest.raises(CodecError):  # a format this version does not know
        decode_message(encode_value({"format": 3, "exchange": "", "routing_key": ""}), b"")


def test_stored_properties_are_keyed_by_name() -> None:
    # Rows written by a newer version with a property this one lacks, or without one
    # it has, read back: the properties are a table keyed by name, not positions.
    header = encode_value({"format": 2, "exchange": "ex", "routing_key": "rk",
                           "properties": {"message_id": b"m-1", "priority": 4,
                                          "a_field_from_the_future": b"x"}})  # fmt: skip
    message = decode_message(header, b"body")
    assert (message.properties.message_id, message.properties.priority) == (b"m-1", 4)
    assert message.properties.content_type is None and message.body == b"body"


def test_rows_of_amqp_properties_keyed_by_name_still_read() -> None:
    # Before format 2 the table held AMQP 0-9-1's basic properties.
    header = encode_value(["ex", "rk", {"message_id": "m-1", "priority": 4,
                                        "delivery_mode": 1, "expiration": "500"}])  # fmt: skip
    p = decode_message(header, b"body").properties
    assert (p.message_id, p.priority, p.durable, p.ttl) == (b"m-1", 4, False, 500)
    assert p.annotations == (("amqp091.delivery_mode", 1),)


def test_pigeon_0_1_positional_properties_still_read() -> None:
    # 0.1 stored the 14 values by position (tests/storage/fixtures/pigeon-0.1 holds
    # a whole folder of them; this is one header of that shape).
    values = ["text/plain", None, {"k": 1}, 2, 5, "c", "r", "60000", "id", 7, "t", "u",
              "app", "cl"]  # fmt: skip
    message = decode_message(encode_value(["ex", "rk", values]), b"")
    p = message.properties
    assert (p.content_type, p.headers, p.durable, p.priority, p.ttl, p.app_id) == (
        "text/plain", (("k", 1),), True, 5, 60000, "app")  # fmt: skip
    assert (p.correlation_id, p.message_id) == (b"c", b"id")
    assert p.annotations == (("amqp091.cluster_id", "cl"),)
