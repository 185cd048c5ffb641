"""Message properties as the HTTP API takes and shows them (RabbitMQ's JSON shape).

RabbitMQ's management API names properties as AMQP 0-9-1's basic properties. In, by
its rules, checked with a private RabbitMQ node: a message id or correlation id of
any length is accepted (an AMQP 0-9-1 consumer gets a long one in the
``x-message-id`` / ``x-correlation-id`` header, docs/messages.md); a priority over
255 is accepted as 255 (RabbitMQ answers 200 and keeps 300, which no AMQP consumer
can then be given; a priority queue treats both alike); ``delivery_mode`` must be 1
or 2 and ``expiration`` a number of milliseconds, or 400 with RabbitMQ's reason.
"""

from __future__ import annotations

from typing import Any

from pigeon.admin.shapes import jsonable
from pigeon.admin.web import BadRequest, Json
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

INTEGER_PROPERTIES = frozenset({"delivery_mode", "priority", "timestamp"})
_TEXT = ("content_type", "content_encoding", "reply_to", "type", "user_id", "app_id")


def properties_from(data: Any) -> Properties:
    """Neutral, checked properties of a publish request's ``properties``."""
    if data in (None, [], {}):
        return Properties()
    if not isinstance(data, dict):
        raise BadRequest("properties must be a JSON object")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in BASIC_NAMES:
            raise BadRequest(f"unknown message property '{key}'")
        if key in INTEGER_PROPERTIES and not isinstance(value, int):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise BadRequest(f"property '{key}' must be an integer") from None
        elif key == "headers" and not isinstance(value, dict):
            raise BadRequest("headers must be a JSON object")
        elif key not in INTEGER_PROPERTIES and key != "headers" and not isinstance(value, str):
            value = str(value)
        values[key] = value
    properties = _neutral(values)
    check_properties(properties)  # 400 now, rather than a consumer's failure at delivery
    return properties


def _neutral(values: dict[str, Any]) -> Properties:
    mode = values.get("delivery_mode")
    if mode is not None and mode not in (1, 2):
        raise PreconditionFailed(f"invalid message: {{delivery_mode_unknown,{mode}}}")
    annotations = [] if mode in (None, 2) else [(AMQP_DELIVERY_MODE, mode)]
    if "cluster_id" in values:
        annotations.append((AMQP_CLUSTER_ID, values["cluster_id"]))
    priority = values.get("priority")
    headers = values.get("headers")
    return Properties(
        durable=mode == 2,
        priority=None if priority is None else min(priority, 255),
        ttl=parse_expiration(values.get("expiration")),
        message_id=_id(values.get("message_id")),
        correlation_id=_id(values.get("correlation_id")),
        timestamp=values.get("timestamp"),
        headers=tuple(headers.items()) if headers else (),
        annotations=tuple(annotations),
        **{name: values[name] for name in _TEXT if name in values},
    )


def _id(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")


def properties_json(properties: Properties) -> Json:
    """What RabbitMQ's API shows: the set properties by name, sorted."""
    values = basic_values(properties)
    return {name: jsonable(values[name]) for name in sorted(values)}
