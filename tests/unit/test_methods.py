"""Generated method classes against pamqp as an independent oracle, and the
error codes of decode_method for bad payloads (as RabbitMQ 3.10 answers)."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import pamqp.commands
import pamqp.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import FRAME_METHOD, encode_frame
from pigeon.protocols.amqp091.replies import HardError, ReplyCode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import codegen  # noqa: E402

SPEC = json.loads(codegen.DEFAULT_SPEC.read_text())
KINDS: dict[type[m.Method], list[codegen.Field]] = {
    m.METHODS[klass["id"] << 16 | method["id"]]: codegen.fields_of(SPEC, klass["name"], method)
    for klass in SPEC["classes"]
    for method in klass["methods"]
}
# pamqp warns when it builds basic.recover-async, deprecated in 0-9-1.
pytestmark = pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning")
ALL = sorted(m.METHODS.values(), key=lambda cls: cls.INDEX)
# pamqp 3+ dropped the access class (removed in 0-9-1, still in RabbitMQ's JSON).
ORACLE = [cls for cls in ALL if cls.INDEX in pamqp.commands.INDEX_MAPPING]

# pamqp validates names against this alphabet and reserved fields against fixed
# values, so the oracle comparison sticks to what it accepts.
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_.:", max_size=60)
VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAME, inner, max_size=4),
    max_leaves=12,
)
TABLE = st.dictionaries(NAME.filter(bool), VALUE, max_size=5)
BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    # pamqp reads longlong as signed; the spec (and we) as unsigned.
    "longlong": st.integers(0, 2**63 - 1),
    "bit": st.booleans(),
    "shortstr": NAME,
    "longstr": st.binary(max_size=40).map(lambda b: b.hex().encode()),
    "table": TABLE,
}


def pamqp_class(cls: type[m.Method]) -> Any:
    return pamqp.commands.INDEX_MAPPING[cls.INDEX]


def pamqp_default(cls: type[m.Method], position: int) -> Any:
    value = getattr(pamqp_class(cls)(), pamqp_class(cls).__slots__[position])
    return (
        value.encode()
        if isinstance(value, str) and KINDS[cls][position].kind == "longstr"
        else value
    )


@st.composite
def instances(draw: st.DrawFn, cls: type[m.Method]) -> m.Method:
    values = []
    for position, field in enumerate(KINDS[cls]):
        if field.name.startswith("reserved") and cls in ORACLE:
            values.append(pamqp_default(cls, position))
        else:
            values.append(draw(BY_KIND[field.kind]))
    return cls(*values)


def normal(value: Any) -> Any:
    """Compare across libraries: pamqp keeps longstr as str when it is UTF-8."""
    return value.encode() if isinstance(value, str) else value


def pamqp_values(obj: Any) -> list[Any]:
    return [getattr(obj, name) for name in obj.__slots__]


def test_every_spec_method_has_a_class_with_its_ids() -> None:
    assert len(m.METHODS) == sum(len(k["methods"]) for k in SPEC["classes"]) == 66
    assert {cls.NAME for cls in ALL} - {cls.NAME for cls in ORACLE} == {
        "access.request",
        "access.request-ok",
    }
    for cls in ORACLE:
        assert cls.INDEX == cls.CLASS_ID << 16 | cls.METHOD_ID
        assert pamqp_class(cls).__slots__ == [] or len(pamqp_class(cls).__slots__) == len(
            cls.FIELDS
        )


def test_class_attributes_from_the_spec() -> None:
    assert m.BasicPublish.NAME == "basic.publish"
    assert {cls for cls in ALL if cls.HAS_CONTENT} == {
        m.BasicPublish,
        m.BasicReturn,
        m.BasicDeliver,
        m.BasicGetOk,
    }
    assert m.QueueDeclare.SYNCHRONOUS and not m.BasicAck.SYNCHRONOUS
    get_responses, start_responses = m.BasicGet.RESPONSES, m.ConnectionStart.RESPONSES
    assert get_responses == (m.BasicGetOk, m.BasicGetEmpty)
    assert start_responses == (m.ConnectionStartOk,)
    assert m.BasicPublish.RESPONSES == ()
    assert m.BasicQos.FIELDS == ("prefetch_size", "prefetch_count", "global_")
    assert m.QueueDeclare.FIELDS[0] == "reserved_1" and "no_wait" in m.QueueDeclare.FIELDS


def test_tables_default_fresh_per_instance() -> None:
    first, second = m.QueueDeclare(), m.QueueDeclare()
    first.arguments["x-max-length"] = 1
    assert second.arguments == {}
    assert m.QueueDeclare(arguments=None).encode() == m.QueueDeclare().encode()


@pytest.mark.parametrize("cls", ORACLE, ids=lambda cls: cls.NAME)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_ours_encoded_pamqp_decodes(cls: type[m.Method], data: st.DataObject) -> None:
    ours = data.draw(instances(cls))
    frame = encode_frame(FRAME_METHOD, 1, ours.encode())
    consumed, channel, theirs = pamqp.frame.unmarshal(frame)
    assert (consumed, channel) == (len(frame), 1)
    assert [normal(v) for v in pamqp_values(theirs)] == [
        normal(getattr(ours, name)) for name in ours.FIELDS
    ]


@pytest.mark.parametrize("cls", ORACLE, ids=lambda cls: cls.NAME)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_pamqp_encoded_ours_decodes(cls: type[m.Method], data: st.DataObject) -> None:
    expected = data.draw(instances(cls))
    theirs = pamqp_class(cls)()
    for name, value in zip(
        theirs.__slots__, (getattr(expected, f) for f in cls.FIELDS), strict=True
    ):
        setattr(theirs, name, value.decode() if isinstance(value, bytes) else value)
    frame = pamqp.frame.marshal(theirs, 1)
    assert m.decode_method(memoryview(frame)[7:-1]) == expected


@given(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.integers(0, 2**64 - 1),
)
def test_round_trip_any_text_and_bad_utf8(text: str, raw: str, tag: int) -> None:
    method = m.BasicDeliver(
        consumer_tag=text[:60],
        delivery_tag=tag,
        redelivered=True,
        exchange=raw[:60],
        routing_key="",
    )
    payload = method.encode()
    assert m.decode_method(payload) == method
    assert m.decode_method(memoryview(payload)) == method


def test_short_string_over_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        m.QueueDeclare(queue="é" * 128).encode()
    m.QueueDeclare(queue="q" * 255).encode()


def test_bits_pack_into_one_octet_least_significant_first() -> None:
    payload = m.QueueDeclare(queue="q", passive=True, exclusive=True, no_wait=True).encode()
    # class, method, reserved short, "q", then one octet of bits, empty table
    assert payload == struct.pack(">HHHB", 50, 10, 0, 1) + b"q" + bytes([0b10101]) + bytes(4)


def expect(payload: bytes, code: ReplyCode, class_id: int, method_id: int) -> None:
    with pytest.raises(HardError) as caught:
        m.decode_method(payload)
    error = caught.value
    assert (error.reply_code, error.class_id, error.method_id) == (code, class_id, method_id)


def test_unknown_method_is_540() -> None:
    expect(struct.pack(">HH", 60, 99), ReplyCode.NOT_IMPLEMENTED, 60, 99)
    expect(struct.pack(">HH", 99, 1), ReplyCode.NOT_IMPLEMENTED, 99, 1)


def test_short_or_trailing_arguments_are_501_like_rabbitmq() -> None:
    expect(b"\x00", ReplyCode.FRAME_ERROR, 0, 0)
    expect(struct.pack(">HH", 20, 10), ReplyCode.FRAME_ERROR, 20, 10)  # channel.open, no arg
    expect(m.BasicQos().encode() + b"zz", ReplyCode.FRAME_ERROR, 60, 10)
    expect(m.BasicAck(1).encode()[:-1], ReplyCode.FRAME_ERROR, 60, 80)
    declare = m.QueueDeclare(queue="abc").encode()
    expect(declare[:9], ReplyCode.FRAME_ERROR, 50, 10)  # cut inside the name
    expect(declare + b"\x00", ReplyCode.FRAME_ERROR, 50, 10)
    # A table with an unknown field type ('Z')
    bad = struct.pack(">HHH", 50, 10, 0) + b"\x01q\x00" + struct.pack(">I", 3) + b"\x01aZ"
    expect(bad, ReplyCode.FRAME_ERROR, 50, 10)


@given(st.binary(max_size=64))
def test_any_payload_decodes_or_raises_hard_error(tail: bytes) -> None:
    for cls in ALL:
        try:
            m.decode_method(struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID) + tail)
        except HardError as error:
            assert error.reply_code == ReplyCode.FRAME_ERROR
