"""AMQP 0-9-1 basic properties <-> neutral properties (protocols/amqp091/convert.py).

Whatever the broker accepted encodes for an AMQP consumer, by docs/messages.md's rules,
never with an exception at delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.core.message import Long, Properties, check_properties
from pigeon.errors import PreconditionFailed
from pigeon.protocols.amqp091.codec import BasicProperties, decode_encoded_properties
from pigeon.protocols.amqp091.convert import encode, from_basic, to_basic

texts = st.text(max_size=300)
whole_seconds = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
leaves = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | texts
          | st.binary(max_size=20) | st.floats(allow_nan=False) | whole_seconds)  # fmt: skip
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
neutral = st.builds(
    Properties,
    durable=st.booleans(),
    priority=st.none() | st.integers(0, 255),
    ttl=st.none() | st.integers(0, 2**40),
    message_id=st.none() | st.binary(max_size=400),
    correlation_id=st.none() | st.binary(max_size=400),
    reply_to=st.none() | texts,
    content_type=st.none() | texts,
    user_id=st.none() | texts,
    timestamp=st.none() | st.integers(0, 2**64 - 1),
    headers=st.lists(st.tuples(texts, values), max_size=4).map(tuple),
    annotations=st.lists(st.tuples(st.just("amqp091.cluster_id"), texts), max_size=1).map(tuple),
)


@settings(deadline=None, max_examples=300)
@given(neutral)
def test_whatever_entry_accepted_encodes_for_an_amqp_consumer(properties: Properties) -> None:
    check_properties(properties)
    decoded = decode_encoded_properties(encode(properties))
    assert decoded.priority == properties.priority
    assert decoded.delivery_mode == (2 if properties.durable else None)
    assert decoded.expiration == (None if properties.ttl is None else str(properties.ttl))


def test_long_ids_move_to_headers_and_long_texts_are_dropped() -> None:
    basic = to_basic(
        Properties(
            correlation_id=b"c" * 300,
            message_id=b"\xff" * 256,
            app_id="a" * 256,
            reply_to="r",
            headers=(("k", 1), ("k", 2), ("x" * 256, "dropped at encoding")),
        )
    )
    assert basic.correlation_id is None and basic.message_id is None
    assert basic.app_id is None and basic.reply_to == "r"
    assert basic.headers is not None
    assert basic.headers["x-correlation-id"] == "c" * 300
    assert basic.headers["x-message-id"] == b"\xff" * 256  # not UTF-8: a byte array
    assert basic.headers["k"] == 1  # the first of a repeated name
    decoded = decode_encoded_properties(encode(Properties(headers=(("x" * 256, 1), ("ok", 2)))))
    assert decoded.headers == {"ok": 2}


def test_amqp_values_without_a_neutral_meaning_travel_as_annotations() -> None:
    basic = BasicProperties(
        delivery_mode=1,
        cluster_id="c1",
        expiration="1500",
        headers={"n": Long(3), "d": Decimal("1.5"), "t": datetime(2024, 1, 1, tzinfo=UTC)},
        correlation_id="id",
    )
    neutral = from_basic(basic)
    assert neutral.ttl == 1500 and not neutral.durable and neutral.correlation_id == b"id"
    assert neutral.annotations == (("amqp091.delivery_mode", 1), ("amqp091.cluster_id", "c1"))
    assert to_basic(neutral) == basic


def test_an_expiration_rabbitmq_refuses_is_refused_at_entry() -> None:
    with pytest.raises(PreconditionFailed, match="invalid expiration 'soon': no_integer"):
        from_basic(BasicProperties(expiration="soon"))


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        (Properties(priority=300), "from 0 to 255"),
        (Properties(headers=(("n", 2**70),)), "signed 64-bit"),
        (Properties(headers=(("o", object()),)), "a object cannot be carried"),
        (Properties(correlation_id="text"), "must be bytes"),  # type: ignore[arg-type]
    ],
)
def test_the_neutral_check_names_what_no_protocol_carries(
    properties: Properties, reason: str
) -> None:
    with pytest.raises(PreconditionFailed, match=reason):
        check_properties(properties)
