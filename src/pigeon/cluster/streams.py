"""How a durable queue looks in JetStream: its stream, subject and consumer names, the
stream and consumer settings, and a message as a JetStream payload.

Names: a vhost or queue name may hold any character (``.``, ``*``, ``>``, spaces,
non-ASCII), none of which a subject token or a stream name may. Each is written in
lower-case base32 without padding (letters and digits only, case-insensitive, so that
two names never share a stream folder on a case-insensitive disk); a name whose
encoding would be longer than ``_LONGEST`` tokens is named by a SHA-256 digest instead.

Payload: the message's stored record (``storage.codec.encode_message``: exchange,
routing key and properties, the same format the SQLite store keeps) behind a 4-byte
length, then the body as published. Not NATS headers: the record is binary (headers
are text lines, so it would need base64, a third larger) and one byte string per
message is one copy. Only ``Nats-Msg-Id`` (idempotent retries) and the expected stream
travel as headers, because JetStream reads them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from struct import Struct
from typing import Any

from pigeon.core.message import Message
from pigeon.storage.codec import CodecError, decode_message, encode_message

CONSUMER = "pigeon"  # the one durable pull consumer every front-end shares
SUBJECT_PREFIX = "pigeon.q"
STREAM_PREFIX = "PQ"
_LONGEST = 100
_LENGTH = Struct(">I")
# JetStream's error codes: a stream or consumer exists already with other settings
# (declared by another front-end, maybe configured differently: used as it is), and a
# stream that is not there.
STREAM_EXISTS = (10058,)
CONSUMER_EXISTS = (10013, 10148)
STREAM_NOT_FOUND = (10059,)
CONSUMER_NOT_FOUND = (10014,)
# ... and a replica count it cannot place: not clustered, too few servers, no peers.
CANNOT_PLACE = (10074, 10023, 10005)


def _token(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape")
    encoded = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    if len(encoded) <= _LONGEST:
        return "n" + encoded  # never empty (the default vhost "/" is not, "" could be)
    return "h" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class StreamNames:
    """The JetStream names of one queue."""

    stream: str
    subject: str
    consumer: str = CONSUMER

    @classmethod
    def of(cls, vhost: str, queue: str) -> StreamNames:
        vhost_token, queue_token = _token(vhost), _token(queue)
        return cls(
            stream=f"{STREAM_PREFIX}_{vhost_token}_{queue_token}",
            subject=f"{SUBJECT_PREFIX}.{vhost_token}.{queue_token}",
        )


def stream_config(names: StreamNames, replicas: int) -> dict[str, Any]:
    """Work-queue retention (a message leaves once acked), file storage, R``replicas``."""
    return {
        "name": names.stream,
        "subjects": [names.subject],
        "retention": "workqueue",
        "storage": "file",
        "num_replicas": replicas,
        "discard": "old",
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "duplicate_window": 120_000_000_000,  # 2 min (ns): retries within it are dropped
    }


def consumer_config(names: StreamNames, ack_wait: float) -> dict[str, Any]:
    """One durable pull consumer: explicit acks, redelivered for ever, back to the
    stream ``ack_wait`` seconds after the front-end holding it stops saying it works on
    it (a dead front-end); no cap on messages out, each front-end's credit bounds it."""
    return {
        "durable_name": names.consumer,
        "ack_policy": "explicit",
        "deliver_policy": "all",
        "max_deliver": -1,
        "ack_wait": int(ack_wait * 1e9),
        "max_ack_pending": -1,
        "max_waiting": 512,
    }


def encode_payload(message: Message) -> bytes:
    header = encode_message(message)
    return _LENGTH.pack(len(header)) + header + message.body


def decode_payload(data: bytes) -> Message:
    """Raises :class:`CodecError` for a payload Pigeon did not write."""
    if len(data) < _LENGTH.size:
        raise CodecError("payload shorter than its length prefix")
    (length,) = _LENGTH.unpack_from(data)
    end = _LENGTH.size + length
    if end > len(data):
        raise CodecError("payload shorter than its record")
    return decode_message(bytes(data[_LENGTH.size : end]), bytes(data[end:]))


def placement(answer: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Leader and members from a stream's or consumer's info (its ``cluster``)."""
    cluster = answer.get("cluster") or {}
    leader = cluster.get("leader")
    if not isinstance(leader, str) or not leader:
        return None
    replicas = [r.get("name") for r in cluster.get("replicas") or () if isinstance(r, dict)]
    return leader, sorted([leader, *(name for name in replicas if isinstance(name, str))])
