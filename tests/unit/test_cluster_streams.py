"""Cluster mode's JetStream names and payloads, without a server: any vhost and queue
name gives valid, distinct subject tokens and stream names; a message round-trips
through the payload; a payload Pigeon did not write is refused, never delivered."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.cluster.confirms import PubAckLedger
from pigeon.cluster.streams import StreamNames, decode_payload, encode_payload
from pigeon.core.message import Message, Properties
from pigeon.storage.codec import CodecError

# What JetStream accepts in a stream name and a subject token (and the folder a
# stream is kept in on a case-insensitive disk): letters, digits, '_' and '-'.
SAFE = re.compile(r"[a-z0-9_-]+", re.IGNORECASE)
# Long enough for the digest form (an encoding over 100 characters); a shared, busy
# machine must not fail a run for being slow to generate them.
names = st.text(max_size=150)
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RELAXED
@given(names, names)
def test_any_names_give_safe_stream_names_and_subject_tokens(vhost: str, queue: str) -> None:
    found = StreamNames.of(vhost, queue)
    assert SAFE.fullmatch(found.stream) and len(found.stream) <= 255
    tokens = found.subject.split(".")
    assert tokens[:2] == ["pigeon", "q"] and len(tokens) == 4
    assert all(SAFE.fullmatch(token) for token in tokens[2:])


@RELAXED
@given(names, names, names, names)
def test_distinct_names_get_distinct_streams(a: str, b: str, c: str, d: str) -> None:
    if (a, b) != (c, d):
        first, second = StreamNames.of(a, b), StreamNames.of(c, d)
        assert first.stream.lower() != second.stream.lower()
        assert first.subject.lower() != second.subject.lower()


@RELAXED
@given(st.binary(max_size=500), st.text(max_size=50), st.text(max_size=50))
def test_a_message_round_trips_through_the_payload(body: bytes, rk: str, kind: str) -> None:
    properties = Properties(durable=True, content_type="text/plain", type=kind or None,
                            headers=(("x", 1), ("y", [b"z"])), ttl=5, priority=3)  # fmt: skip
    message = Message("amq.topic", rk, properties, body)
    back = decode_payload(encode_payload(message))
    assert (back.exchange, back.routing_key, back.body) == ("amq.topic", rk, body)
    assert back.properties == properties


@RELAXED
@given(st.binary(max_size=64))
def test_a_foreign_payload_is_refused(data: bytes) -> None:
    """CodecError or a decoded record: no other exception escapes."""
    try:
        decode_payload(data)
    except CodecError:
        return
    # (A payload that happens to decode is a well-formed record: fine.)


def test_a_truncated_payload_is_refused() -> None:
    payload = encode_payload(Message("", "q", Properties(), b"body"))
    with pytest.raises(CodecError):
        decode_payload(payload[:6])
    with pytest.raises(CodecError):
        decode_payload(b"\x00\x01")


def test_the_ledger_is_durable_up_to_the_first_unacknowledged_write() -> None:
    ledger = PubAckLedger()
    calls: list[str] = []
    ledger.sync(lambda: calls.append("empty"))  # nothing written: at once
    first, second, third = ledger.begin(), ledger.begin(), ledger.begin()
    ledger.sync(lambda: calls.append("all three"))
    ledger.done(second)
    ledger.done(third)
    assert (ledger.written, ledger.durable, ledger.queued_writes) == (3, 0, 1)
    assert calls == ["empty"]  # the first is still unacknowledged: no confirm yet
    ledger.done(first)
    assert ledger.durable == 3 and calls == ["empty", "all three"]
    ledger.done(first)  # again: harmless
    assert ledger.durable == 3
