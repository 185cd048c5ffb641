"""Durable definition commands as key-value entries of the bucket every node watches.

One key per object (docs/cluster.md, "Definitions"); the value is JSON naming the
node that wrote it (``origin``: a node skips its own changes when they come back)
and the operation: a declare carries the record, a delete is a tombstone value (so
that its origin is known too, which a KV delete marker does not carry).
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
from dataclasses import asdict
from typing import Any

from pigeon.core.commands import (
    Bind,
    BindingRecord,
    Command,
    DeclareExchange,
    DeclareQueue,
    DeclareVhost,
    DeleteDocument,
    DeleteExchange,
    DeleteQueue,
    DeleteVhost,
    ExchangeRecord,
    QueueRecord,
    SaveDocument,
    Unbind,
)

BUCKET = "pigeon-definitions"
DEFINITIONS = (
    DeclareVhost,
    DeleteVhost,
    DeclareExchange,
    DeleteExchange,
    DeclareQueue,
    DeleteQueue,
    Bind,
    Unbind,
    SaveDocument,
    DeleteDocument,
)
_SAFE = frozenset(string.ascii_letters + string.digits + "-_")


def encode(name: str) -> str:
    """A KV key token for any name: ``=XX`` for each byte outside ``A-Za-z0-9-_``
    (so ``.``, ``*``, ``>`` and spaces never reach the key); ``=`` alone for ""."""
    if not name:
        return "="
    return "".join(
        chr(byte) if chr(byte) in _SAFE else f"={byte:02X}" for byte in name.encode("utf-8")
    )


def key_of(command: Command) -> str:
    match command:
        case DeclareVhost(name) | DeleteVhost(name):
            return f"vhost.{encode(name)}"
        case DeclareExchange(record):
            return f"exchange.{encode(record.vhost)}.{encode(record.name)}"
        case DeleteExchange(vhost, name):
            return f"exchange.{encode(vhost)}.{encode(name)}"
        case DeclareQueue(record):
            return f"queue.{encode(record.vhost)}.{encode(record.name)}"
        case DeleteQueue(vhost, name):
            return f"queue.{encode(vhost)}.{encode(name)}"
        case Bind(record) | Unbind(record):
            return _binding_key(record)
        case SaveDocument(kind, key, _) | DeleteDocument(kind, key):
            return f"document.{encode(kind)}.{encode(key)}"
    raise ValueError(f"not a definition: {command!r}")


def _binding_key(record: BindingRecord) -> str:
    arguments = json.dumps(record.arguments, sort_keys=True, default=_plain).encode()
    digest = hashlib.sha256(arguments).hexdigest()[:16]
    parts = (record.vhost, record.source, record.destination_kind, record.destination)
    return "binding." + ".".join(map(encode, (*parts, record.routing_key))) + f".{digest}"


def _plain(value: Any) -> Any:
    """AMQP table values JSON has no type for."""
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    return str(value)


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {key: _restore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item) for item in value]
    return value


def encode_value(command: Command, origin: str) -> bytes:
    kind = type(command).__name__
    fields = asdict(command)
    return json.dumps(
        {"origin": origin, "command": kind, "fields": fields}, default=_plain
    ).encode()


def decode_value(data: bytes) -> tuple[str, Command]:
    """(origin, command) of an entry's value; ValueError when it is not one."""
    try:
        found = json.loads(data)
        origin, kind, fields = found["origin"], found["command"], _restore(found["fields"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a definition entry: {error}") from None
    classes = {cls.__name__: cls for cls in DEFINITIONS}
    if kind not in classes:
        raise ValueError(f"unknown definition command {kind!r}")
    return str(origin), _build(classes[kind], fields)


def _build(cls: type[Any], fields: dict[str, Any]) -> Command:
    records = {"record": _RECORDS.get(cls)}
    if records["record"] is not None:
        return cls(records["record"](**fields["record"]))  # type: ignore[no-any-return]
    return cls(**fields)  # type: ignore[no-any-return]


_RECORDS: dict[type[Any], type[Any]] = {
    DeclareExchange: ExchangeRecord,
    DeclareQueue: QueueRecord,
    Bind: BindingRecord,
    Unbind: BindingRecord,
}


def is_delete(command: Command) -> bool:
    return isinstance(command, DeleteVhost | DeleteExchange | DeleteQueue | Unbind | DeleteDocument)


def same_definition(mine: Command, theirs: Command) -> bool:
    """Whether two declares of one key describe the same object (a redeclare)."""
    return type(mine) is type(theirs) and asdict(mine) == asdict(theirs)
