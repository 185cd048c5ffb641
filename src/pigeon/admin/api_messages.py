"""Publishing and getting messages over HTTP (for tests and operators, not for throughput).

``POST /api/exchanges/{vhost}/{x}/publish`` goes through the operations layer
like an AMQP publish (permissions, internal exchange, user-id);
``POST /api/queues/{vhost}/{q}/get`` takes messages with the core's ``get``
(after the same read check as ``basic.get``) and then acknowledges, requeues
or rejects them all, per the ``ackmode`` (RabbitMQ requeues only after taking
all ``count`` messages, so one request never returns the same message twice).
"""

from __future__ import annotations

import base64
import binascii
import time

from aiohttp import web

from pigeon.admin.api_topology import exchange_name
from pigeon.admin.message_json import properties_from, properties_json
from pigeon.admin.web import BadRequest, Json, body, client, ok, vhost_of
from pigeon.core.message import Message
from pigeon.core.quorum import with_delivery_count
from pigeon.errors import AccessRefused, PreconditionFailed

ACK_MODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false")


def payload_from(data: Json) -> bytes:
    payload = data.get("payload", "")
    encoding = data.get("payload_encoding", "string")
    if not isinstance(payload, str):
        raise BadRequest("payload must be a string")
    if encoding == "string":
        return payload.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise BadRequest("payload is not valid base64") from None
    raise BadRequest("payload_encoding must be 'string' or 'base64'")


async def publish(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = exchange_name(request)
    data = await body(request)
    routing_key = data.get("routing_key", "")
    if not isinstance(routing_key, str):
        raise BadRequest("routing_key must be a string")
    vhost.exchange(name)  # 404 for a missing one
    payload = payload_from(data)
    try:
        properties = properties_from(data.get("properties"))
        message = Message(name, routing_key, properties, payload, time.monotonic_ns())
        routed = client(request, vhost).publish(message)
    except AccessRefused as refused:
        # RabbitMQ's API publishes on an AMQP channel and answers 400 with the channel's
        # close, permission refusals included (not the 401 of the other actions).
        raise BadRequest(f"403 ACCESS_REFUSED - {refused.text}") from None
    except PreconditionFailed as refused:
        raise BadRequest(f"406 PRECONDITION_FAILED - {refused.text}") from None
    return ok({"routed": routed > 0})


def _count(data: Json) -> int:
    try:
        count = int(data.get("count", 1))
    except (TypeError, ValueError):
        raise BadRequest("count must be an integer") from None
    if count < 1:
        raise BadRequest("count must be at least 1")
    return count


def _encoded(payload: bytes, encoding: str, truncate: int | None) -> tuple[str, str]:
    if truncate is not None:
        payload = payload[:truncate]
    if encoding == "auto":
        try:
            return payload.decode("utf-8"), "string"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(payload).decode("ascii"), "base64"


async def get_messages(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = request.match_info["name"]
    data = await body(request)
    mode = data.get("ackmode", "ack_requeue_true")
    if mode not in ACK_MODES:
        raise BadRequest(f"ackmode must be one of {', '.join(ACK_MODES)}")
    encoding = data.get("encoding", "auto")
    if encoding not in ("auto", "base64"):
        raise BadRequest("encoding must be 'auto' or 'base64'")
    truncate = data.get("truncate")
    if truncate is not None and not isinstance(truncate, int):
        raise BadRequest("truncate must be an integer")
    count = _count(data)
    ops = client(request, vhost)
    queue = ops.queue_to_read(name)
    taken = []
    rows = []
    for _ in range(count):
        entry = queue.get(no_ack=False)
        if entry is None:
            break
        taken.append(entry)
        message = entry.message
        if queue.counts_deliveries:  # as on an AMQP basic.get, which RabbitMQ's API does
            message = with_delivery_count(message, entry.delivery_count)
        payload, used = _encoded(message.body, encoding, truncate)
        rows.append(
            {
                "payload_bytes": len(message.body),
                "redelivered": entry.redelivered,
                "exchange": message.exchange,
                "routing_key": message.routing_key,
                "message_count": queue.message_count,
                "properties": properties_json(message.properties),
                "payload": payload,
                "payload_encoding": used,
            }
        )
    ops.settle(queue, taken, ack=mode == "ack_requeue_false", requeue=mode.endswith("true"))
    return ok(rows)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/exchanges/{vhost}/{name}/publish", publish)
    app.router.add_post("/api/queues/{vhost}/{name}/get", get_messages)
