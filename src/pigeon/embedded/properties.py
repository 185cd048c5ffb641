"""The embedded API's message properties: keyword arguments in, a plain object out.

``publish(..., **properties)`` takes AMQP 0-9-1's property names (``content_type``,
``headers``, ``delivery_mode``, ``correlation_id``, ``expiration``...), as pika and
RabbitMQ's tools do; :func:`from_keywords` turns them into the core's neutral
properties and refuses, at publish, what an AMQP 0-9-1 consumer could not get as it
was given (a text over 255 bytes, a priority over 255, an expiration that is not a
number of milliseconds, a header value no protocol carries). A delivered or queued
message shows them as :class:`MessageProperties`, a copy under the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pigeon.core.message import (
    AMQP_CLUSTER_ID,
    AMQP_DELIVERY_MODE,
    BASIC_NAMES,
    Properties,
    basic_values,
    check_properties,
)
from pigeon.errors import PreconditionFailed
from pigeon.operations.expiration import parse_expiration

MAX_SHORT = 255  # bytes: an AMQP 0-9-1 short string
_TEXT = ("content_type", "content_encoding", "reply_to", "type", "user_id", "app_id")
_IDS = ("message_id", "correlation_id")


@dataclass(slots=True)
class MessageProperties:
    """A message's properties under AMQP 0-9-1's names (a copy: changing it changes
    nothing in the broker)."""

    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None


def view(properties: Properties) -> MessageProperties:
    return MessageProperties(**basic_values(properties))


def from_keywords(values: Mapping[str, Any]) -> Properties:
    """Neutral properties of ``publish``'s keyword arguments; TypeError for an unknown
    name, PreconditionFailed for a value no consumer could get."""
    unknown = set(values) - set(BASIC_NAMES)
    if unknown:
        raise TypeError(
            f"unknown message properties: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(BASIC_NAMES))})"
        )
    for name in (*_TEXT, *_IDS, "cluster_id"):
        _check_short(name, values.get(name))
    mode = values.get("delivery_mode")
    if mode is not None and (type(mode) is not int or not 0 <= mode <= 255):
        raise PreconditionFailed("property 'delivery_mode' must be an integer from 0 to 255")
    annotations = []
    if mode is not None and mode != 2:
        annotations.append((AMQP_DELIVERY_MODE, mode))
    if values.get("cluster_id") is not None:
        annotations.append((AMQP_CLUSTER_ID, values["cluster_id"]))
    headers = values.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise PreconditionFailed("property 'headers' must be a table")
    properties = Properties(
        durable=mode == 2,
        priority=values.get("priority"),
        ttl=_ttl(values.get("expiration")),
        message_id=_id(values.get("message_id")),
        correlation_id=_id(values.get("correlation_id")),
        headers=tuple(headers.items()) if headers else (),
        annotations=tuple(annotations),
        **{name: values[name] for name in (*_TEXT, "timestamp") if name in values},
    )
    check_properties(properties)
    return properties


def _check_short(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    elif not isinstance(value, bytes) or name not in _IDS:
        raise PreconditionFailed(f"property '{name}' must be a string")
    if len(value) > MAX_SHORT:
        raise PreconditionFailed(f"property '{name}' is longer than {MAX_SHORT} bytes")


def _id(value: str | bytes | None) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return value


def _ttl(expiration: Any) -> int | None:
    if expiration is None or (type(expiration) is int and expiration >= 0):
        return expiration
    if not isinstance(expiration, str):
        raise PreconditionFailed(f"invalid expiration '{expiration}'")
    return parse_expiration(expiration)
