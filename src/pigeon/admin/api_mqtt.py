"""``/api/mqtt/sessions``: every MQTT session, connected or not (Pigeon's own endpoint).

A connected session is an MQTT connection (listed by ``/api/connections`` too);
a persistent session whose client is away is known by its durable queue,
``mqtt-subscription-<client id>qos1`` (the MQTT plugin's name, which RabbitMQ
also uses), its subscriptions by the queue's bindings to the MQTT exchange,
and how long it outlives its client by the queue's ``x-expires``. A session
that never subscribed has no queue, so it shows only while connected.
"""

from __future__ import annotations

from aiohttp import web

from pigeon.admin import shapes
from pigeon.admin.web import Json, listing, monitor, principal, visible_vhosts
from pigeon.core.binding import DestinationKind
from pigeon.core.queue import Queue
from pigeon.core.vhost import VirtualHost

QUEUE_PREFIX, QUEUE_SUFFIX = "mqtt-subscription-", "qos1"
TOPIC_FILTER = "x-mqtt-topic-filter"  # the binding argument a subscription's filter is in


def client_id_of(queue_name: str) -> str | None:
    """The client id a session queue's name carries (None: not a session queue)."""
    if queue_name.startswith(QUEUE_PREFIX) and queue_name.endswith(QUEUE_SUFFIX):
        return queue_name[len(QUEUE_PREFIX) : -len(QUEUE_SUFFIX)]
    return None


def _subscriptions(vhost: VirtualHost, queue: Queue) -> int:
    return sum(
        1
        for b in vhost.bindings()
        if b.destination == queue.name
        and b.destination_kind is DestinationKind.QUEUE
        and TOPIC_FILTER in b.argument_dict
    )


def _offline(vhost: VirtualHost, queue: Queue, client_id: str) -> Json:
    expires = queue.arguments.get("x-expires")
    return {
        "vhost": vhost.name,
        "client_id": client_id,
        "connected": False,
        "connection": None,
        "protocol": None,
        "user": None,
        "clean_sess": not queue.durable,
        "session_expiry_interval": expires // 1000 if isinstance(expires, int) else None,
        "subscriptions": _subscriptions(vhost, queue),
        "messages_queued": len(queue.ready),
        "messages_unacknowledged": 0,
        "queue": queue.name,
    }


def _online(row: Json, queue: Queue | None) -> Json:
    return {
        "vhost": row["vhost"],
        "client_id": row["client_id"],
        "connected": True,
        "connection": row["name"],
        "protocol": row["protocol"],
        "user": row["user"],
        "clean_sess": row["clean_sess"],
        "session_expiry_interval": row["session_expiry_interval"],
        "subscriptions": row["subscriptions"],
        "messages_queued": row["messages_queued"],
        "messages_unacknowledged": row["messages_unacknowledged"],
        "queue": queue.name if queue is not None else None,
    }


def session_rows(request: web.Request) -> list[Json]:
    mon, who = monitor(request), principal(request)
    vhosts = {v.name: v for v in visible_vhosts(request)}
    rows: list[Json] = []
    online: set[tuple[str, str]] = set()
    for handler in mon.handlers():
        info = handler.describe()
        if not shapes.is_mqtt(info) or info.vhost not in vhosts:
            continue
        client_id = str(info.client_properties.get("client_id", ""))
        online.add((info.vhost, client_id))  # (not offline, even if this user may not see it)
        if not who.may_see_connection(handler.username):
            continue
        row = shapes.connection_json(handler, mon)
        queue = vhosts[info.vhost].queues.get(f"{QUEUE_PREFIX}{client_id}{QUEUE_SUFFIX}")
        rows.append(_online(row, queue))
    for vhost in vhosts.values():
        for queue in list(vhost.queues.values()):
            owner = client_id_of(queue.name)
            if owner is not None and (vhost.name, owner) not in online:
                rows.append(_offline(vhost, queue, owner))
    return rows


async def list_sessions(request: web.Request) -> web.Response:
    rows = session_rows(request)
    for row in rows:
        row["name"] = row["client_id"]  # for ?name= filtering and sorting
    return listing(request, rows)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/mqtt/sessions", list_sessions)
    app.router.add_get("/api/mqtt/sessions/{vhost}", list_sessions)
