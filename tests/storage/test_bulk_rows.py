"""The writer's fast paths write exactly what the plain ones would.

``MessageRows`` builds the same rows (same CRC, same header bytes) as
``rows.message_row``; ``bulk`` inserts and deletes exactly the rows asked,
whatever the mix of queues, runs and gaps.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.core.message import Message, Properties
from pigeon.storage import bulk, database, rows
from pigeon.storage.bodies import BodyCodec
from pigeon.storage.codec import encode_message, encode_value

texts = st.text(max_size=12)
properties = st.builds(
    Properties,
    content_type=st.none() | texts,
    headers=st.lists(st.tuples(texts, st.integers() | texts | st.none()), max_size=3).map(tuple),
    durable=st.booleans(),
    priority=st.none() | st.integers(0, 255),
    message_id=st.none() | st.binary(max_size=12),
    timestamp=st.none() | st.integers(0, 2**63),
)
messages = st.builds(
    Message,
    exchange=texts,
    routing_key=texts,
    properties=properties,
    body=st.binary(max_size=300),
    published_at=st.just(0),
    encoded=st.dictionaries(st.just("amqp091"), st.binary(max_size=20), max_size=1),
)


@settings(deadline=None, max_examples=200)
@given(messages, texts, texts, st.integers(0, 2**62))
def test_message_rows_equal_the_plain_rows(
    message: Message, vhost: str, queue: str, seq: int
) -> None:
    codec = BodyCodec()
    built = rows.MessageRows(codec)
    expected = rows.message_row(vhost, queue, seq, message, codec)
    assert built.row(vhost, queue, seq, message) == expected
    assert built.row(vhost, queue, seq, message) == expected  # from the caches
    assert rows.checked(expected)  # the CRC the load checks


@settings(deadline=None)
@given(messages)
def test_encode_message_is_the_generic_encoding(message: Message) -> None:
    # The set properties keyed by name (a field added later leaves old rows readable).
    props = message.properties
    named = {name: getattr(props, name) for name in props.__slots__ if not name.startswith("_")}
    named = {k: v for k, v in named.items() if v is not None and v is not False and v != ()}
    if "headers" in named:
        named["headers"] = [list(entry) for entry in named["headers"]]
    record = {"format": 2, "exchange": message.exchange, "routing_key": message.routing_key,
              "properties": named}  # fmt: skip
    assert encode_message(message) == encode_value(record)


def test_headers_are_encoded_once_per_protocol_encoding() -> None:
    built = rows.MessageRows(BodyCodec())
    first = Message("ex", "rk", Properties(message_id=b"a"), b"1", 0, {"amqp091": b"A"})
    # Same protocol bytes mean the same properties: the cached header is used.
    again = Message("ex", "rk", Properties(message_id=b"a"), b"2", 0, {"amqp091": b"A"})
    other = Message("ex", "rk", Properties(message_id=b"b"), b"3", 0, {"amqp091": b"B"})
    assert built.row("/", "q", 1, first)[3] == built.row("/", "q", 2, again)[3]
    assert built.row("/", "q", 3, other)[3] == encode_message(other)


def test_rows_of_compressed_and_encrypted_bodies_check_and_decode() -> None:
    pytest.importorskip("zstandard")
    pytest.importorskip("cryptography")
    codec = BodyCodec(compress_threshold=10, encryption_key=bytes(32))
    message = Message("ex", "rk", Properties(durable=True), b"a" * 500, 0, {})
    row = rows.MessageRows(codec).row("/", "q", 7, message)
    vhost, queue, seq, header, flags, body = rows.checked(row)
    assert flags == 3
    assert rows.message_of(vhost, queue, seq, header, flags, body, codec).body == message.body


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return database.connect(tmp_path / "t.db", fsync=False)


def _row(vhost: str, queue: str, seq: int) -> tuple[Any, ...]:
    return (vhost, queue, seq, b"h", 0, b"body %d" % seq, 0)


def _keys(conn: sqlite3.Connection) -> set[tuple[str, str, int]]:
    return set(conn.execute("SELECT vhost, queue, seq FROM messages"))


@pytest.mark.parametrize("count", [0, 1, 2, 63, 64, 65, 127, 200])
def test_insert_writes_every_row_once(conn: sqlite3.Connection, count: int) -> None:
    bulk.insert(conn, [_row("/", "q", seq) for seq in range(count)])
    assert _keys(conn) == {("/", "q", seq) for seq in range(count)}
    assert conn.execute("SELECT body FROM messages WHERE seq = 1").fetchall() == (
        [(b"body 1",)] if count > 1 else []
    )


@settings(deadline=None, max_examples=150)
@given(
    st.sets(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 300)), max_size=250),
    st.data(),
)
def test_delete_removes_exactly_the_keys_given(
    tmp_path_factory: pytest.TempPathFactory, stored: set[tuple[str, int]], data: Any
) -> None:
    conn = database.connect(tmp_path_factory.mktemp("bulk") / "t.db", fsync=False)
    try:
        bulk.insert(conn, [_row("/", queue, seq) for queue, seq in sorted(stored)])
        # Removes of stored keys and of keys never written (cancelled adds), in any order.
        asked = data.draw(
            st.lists(
                st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 300)),
                unique=True,
                max_size=250,
            )
        )
        bulk.delete(conn, [("/", queue, seq) for queue, seq in asked])
        assert _keys(conn) == {("/", q, s) for q, s in stored - set(asked)}
    finally:
        conn.close()


@settings(deadline=None, max_examples=100)
@given(messages, st.integers(0, 2**62))
def test_message_reads_back_what_message_of_reads(message: Message, seq: int) -> None:
    codec = BodyCodec()
    reader = rows.MessageRows(codec)
    row = rows.message_row("/", "q", seq, message, codec)
    for _ in range(2):  # the second time from the decoded-header cache
        back = reader.message(*row)
        plain = rows.message_of(*row[:6], codec)
        assert (back.exchange, back.routing_key, back.properties, back.body) == (
            plain.exchange,
            plain.routing_key,
            plain.properties,
            plain.body,
        )


def test_read_messages_never_share_a_headers_table() -> None:
    codec = BodyCodec()
    reader = rows.MessageRows(codec)
    stored = Message("ex", "rk", Properties(headers=(("n", {"m": 1}),)), b"x", 0, {})
    row = rows.message_row("/", "q", 1, stored, codec)
    first, second = reader.message(*row), reader.message(*row)
    first.properties.header_table()["n"]["m"] = 2  # a nested table is mutable
    assert second.properties.headers == (("n", {"m": 1}),)


def test_a_damaged_row_is_refused() -> None:
    codec = BodyCodec()
    row = rows.message_row("/", "q", 1, Message("ex", "rk", Properties(), b"body", 0, {}), codec)
    reader = rows.MessageRows(codec)
    for damaged in ((*row[:5], b"bodY", row[6]), (*row[:3], "text", *row[4:]), (*row[:6], 1)):
        with pytest.raises(ValueError):
            reader.message(*damaged)
