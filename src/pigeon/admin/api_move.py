"""``POST /api/queues/{vhost}/{name}/move``: move messages to another queue (Pigeon's own).

RabbitMQ's management UI moves messages with a dynamic shovel, which consumes
and republishes over AMQP. Pigeon moves them on the broker's loop, one message
at a time and atomically for each: the message is added to the destination
queue before it is acknowledged on the source, and both changes reach the store
in the same commit (the request answers once they are on disk). A message is
never in neither queue; if the destination refuses one (its ``overflow`` is
``reject-publish``), that message goes back to the head of the source queue and
the move stops there.

Body: ``{"destination": "other-queue", "count": 100}`` (count optional: every
ready message). Answer: ``{"moved": n}``. Needs read permission on the source
queue and write permission on the destination queue (checked by the operations
layer, :meth:`pigeon.operations.client.Client.queues_to_move`).
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from pigeon.admin.web import BadRequest, body, client, ok, vhost_of
from pigeon.core.queue import Queue


def move_messages(source: Queue, destination: Queue, limit: int, now: float) -> int:
    moved = 0
    while moved < limit:
        entry = source.get(no_ack=False)
        if entry is None:
            break
        message = entry.message
        ttl = message.properties.ttl
        if ttl is not None:  # as a shovel's republish: its TTL counts again from the move
            message = replace(message, expires_at=now + ttl / 1000)
        if not destination.enqueue(message, now):
            source.requeue([entry])
            break
        source.ack(entry)
        moved += 1
    return moved


async def move(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = request.match_info["name"]
    data = await body(request)
    target = data.get("destination")
    if not isinstance(target, str) or not target:
        raise BadRequest("destination (a queue name) is required")
    if target == name:
        raise BadRequest("destination must be another queue")
    count = data.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise BadRequest("count must be a positive integer")
    source, destination = client(request, vhost).queues_to_move(name, target)
    limit = len(source.ready) if count is None else count
    moved = move_messages(source, destination, limit, vhost.scheduler.time())
    return ok({"moved": moved})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/queues/{vhost}/{name}/move", move)
