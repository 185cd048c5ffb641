"""``/api/exchanges``, ``/api/queues`` and ``/api/bindings``: list, declare, delete, bind.

Every change goes through the operations layer (:class:`pigeon.operations.client.Client`)
that the AMQP adapter and the embedded API call, with the same checks (permissions,
dead-letter and alternate exchanges, topic permissions), so a declaration made here
is checked, named and cascaded exactly as one made over AMQP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from pigeon.admin import shapes
from pigeon.admin.monitor import Monitor
from pigeon.admin.web import (
    BadRequest,
    Json,
    arguments,
    body,
    client,
    flag,
    history_query,
    lazy_listing,
    listing,
    monitor,
    no_content,
    ok,
    vhost_of,
    visible_vhosts,
)
from pigeon.core.binding import DestinationKind
from pigeon.core.queue import Queue
from pigeon.errors import NotFound

DEFAULT_EXCHANGE_ALIAS = "amq.default"
KINDS = {"q": DestinationKind.QUEUE, "e": DestinationKind.EXCHANGE}


def exchange_name(request: web.Request, key: str = "name") -> str:
    name = request.match_info[key]
    return "" if name == DEFAULT_EXCHANGE_ALIAS else name


# -- exchanges ---------------------------------------------------------------------


async def list_exchanges(request: web.Request) -> web.Response:
    rows = [
        shapes.exchange_json(v, x, monitor(request))
        for v in visible_vhosts(request)
        for x in v.exchanges.values()
    ]
    return listing(request, rows)


async def get_exchange(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    exchange = vhost.exchange(exchange_name(request))
    rates = history_query(request, "msg_rates")
    return ok(shapes.exchange_json(vhost, exchange, monitor(request), rates))


async def put_exchange(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = exchange_name(request)
    data = await body(request)
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("exchange type is required")
    existed = name in vhost.exchanges
    client(request, vhost).declare_exchange(
        name,
        kind,
        durable=flag(data, "durable", True),
        auto_delete=flag(data, "auto_delete"),
        internal=flag(data, "internal"),
        arguments=arguments(data),
    )
    return no_content(204 if existed else 201)


async def delete_exchange(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = exchange_name(request)
    vhost.exchange(name)  # 404 for a missing one, as RabbitMQ's API answers
    client(request, vhost).delete_exchange(name, if_unused=request.query.get("if-unused") == "true")
    return no_content()


async def exchange_bindings(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = exchange_name(request)
    vhost.exchange(name)
    side = request.match_info["side"]
    rows = [
        b
        for b in shapes.vhost_bindings(vhost)
        if (side == "source" and b["source"] == name)
        or (
            side == "destination"
            and b["destination_type"] == "exchange"
            and b["destination"] == name
        )
    ]
    return listing(request, rows)


# -- queues ------------------------------------------------------------------------


async def list_queues(request: web.Request) -> web.Response:
    mon = monitor(request)
    lengths, rates = history_query(request, "lengths"), history_query(request, "msg_rates")
    vhosts = {v.name: v for v in visible_vhosts(request)}
    found = [(v.name, q.name, q) for v in vhosts.values() for q in v.queues.values()]
    return lazy_listing(
        request,
        found,
        lambda vhost, q: shapes.queue_json(vhosts[vhost], q, mon, lengths, rates),
        {**QUEUE_SORT_KEYS, **queue_rate_sort_keys(mon)},
    )


# Queue list columns a page can be sorted by without building every queue's JSON.
QUEUE_SORT_KEYS: dict[str, Callable[[Queue], Any]] = {
    "messages": lambda q: len(q.ready) + q.unacked,
    "messages_ready": lambda q: len(q.ready),
    "messages_unacknowledged": lambda q: q.unacked,
    "consumers": lambda q: len(q.consumers),
    "type": lambda q: q.type,
    "durable": lambda q: q.durable,
    "policy": lambda q: q.policy.name if q.policy is not None else None,
}


def queue_rate_sort_keys(mon: Monitor) -> dict[str, Callable[[Queue], Any]]:
    """``message_stats.<counter>_details.rate`` columns, read from the sampler's series
    (the value the JSON would show) without building the queue's JSON."""

    def rate_of(key: str) -> Callable[[Queue], Any]:
        def read(queue: Queue) -> float:
            series = mon.sampler.queue_series(queue)
            return round(series.rate(key, mon.window), 2) if series is not None else 0.0

        return read

    keys = ("publish", "deliver_get", "ack", "redeliver")
    return {f"message_stats.{key}_details.rate": rate_of(key) for key in keys}


async def get_queue(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    queue = vhost.find_queue(request.match_info["name"])
    lengths, rates = history_query(request, "lengths"), history_query(request, "msg_rates")
    return ok(shapes.queue_json(vhost, queue, monitor(request), lengths, rates))


async def put_queue(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = request.match_info["name"]
    data = await body(request)
    existed = name in vhost.queues
    # A dead-letter exchange needs write permission on it, as over AMQP (one check for all).
    client(request, vhost).declare_queue(
        name,
        durable=flag(data, "durable", True),
        auto_delete=flag(data, "auto_delete"),
        arguments=arguments(data),
    )
    return no_content(204 if existed else 201)


async def delete_queue(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = request.match_info["name"]
    vhost.queue(name)
    client(request, vhost).delete_queue(
        name,
        if_unused=request.query.get("if-unused") == "true",
        if_empty=request.query.get("if-empty") == "true",
    )
    return no_content()


async def purge_queue(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = request.match_info["name"]
    client(request, vhost).purge(name)
    return no_content()


async def queue_bindings(request: web.Request) -> web.Response:
    vhost = vhost_of(request)
    name = request.match_info["name"]
    vhost.find_queue(name)
    rows = [
        b
        for b in shapes.vhost_bindings(vhost)
        if b["destination_type"] == "queue" and b["destination"] == name
    ]
    return listing(request, rows)


# -- bindings ----------------------------------------------------------------------


async def list_bindings(request: web.Request) -> web.Response:
    rows = [b for v in visible_vhosts(request) for b in shapes.vhost_bindings(v)]
    return listing(request, rows)


def _between(request: web.Request) -> tuple[str, str, DestinationKind, list[Json]]:
    vhost = vhost_of(request)
    source = exchange_name(request, "source")
    kind = KINDS[request.match_info["kind"]]
    destination = request.match_info["destination"]
    vhost.exchange(source)
    if kind is DestinationKind.QUEUE:
        vhost.find_queue(destination)
    else:
        vhost.exchange(destination)
    rows = [
        b
        for b in shapes.vhost_bindings(vhost)
        if b["source"] == source
        and b["destination"] == destination
        and b["destination_type"] == str(kind)
    ]
    return source, destination, kind, rows


async def bindings_between(request: web.Request) -> web.Response:
    return listing(request, _between(request)[3])


async def add_binding(request: web.Request) -> web.Response:
    source, destination, kind, _ = _between(request)
    vhost = vhost_of(request)
    data = await body(request)
    routing_key = data.get("routing_key", "")
    if not isinstance(routing_key, str):
        raise BadRequest("routing_key must be a string")
    args = arguments(data)
    client(request, vhost).bind(source, destination, kind, routing_key, args)
    key = shapes.properties_key(routing_key, args)
    kind_letter = "q" if kind is DestinationKind.QUEUE else "e"
    location = f"{kind_letter}/{destination}/{key}"
    return web.Response(status=201, headers={"Location": location})


def _one_binding(request: web.Request) -> tuple[str, str, DestinationKind, Json]:
    source, destination, kind, rows = _between(request)
    wanted = request.match_info["props"]
    for row in rows:
        # The key travels percent-encoded in the URL; the router hands it over decoded.
        if wanted in (row["properties_key"], unquote(row["properties_key"])):
            return source, destination, kind, row
    raise NotFound("no such binding")


async def get_binding(request: web.Request) -> web.Response:
    return ok(_one_binding(request)[3])


async def delete_binding(request: web.Request) -> web.Response:
    source, destination, kind, row = _one_binding(request)
    vhost = vhost_of(request)
    client(request, vhost).unbind(source, destination, kind, row["routing_key"], row["arguments"])
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/exchanges", list_exchanges)
    r.add_get("/api/exchanges/{vhost}", list_exchanges)
    r.add_get("/api/exchanges/{vhost}/{name}", get_exchange)
    r.add_put("/api/exchanges/{vhost}/{name}", put_exchange)
    r.add_delete("/api/exchanges/{vhost}/{name}", delete_exchange)
    r.add_get("/api/exchanges/{vhost}/{name}/bindings/{side:source|destination}", exchange_bindings)
    r.add_get("/api/queues", list_queues)
    r.add_get("/api/queues/{vhost}", list_queues)
    r.add_get("/api/queues/{vhost}/{name}", get_queue)
    r.add_put("/api/queues/{vhost}/{name}", put_queue)
    r.add_delete("/api/queues/{vhost}/{name}", delete_queue)
    r.add_delete("/api/queues/{vhost}/{name}/contents", purge_queue)
    r.add_get("/api/queues/{vhost}/{name}/bindings", queue_bindings)
    r.add_get("/api/bindings", list_bindings)
    r.add_get("/api/bindings/{vhost}", list_bindings)
    between = "/api/bindings/{vhost}/e/{source}/{kind:q|e}/{destination}"
    r.add_get(between, bindings_between)
    r.add_post(between, add_binding)
    r.add_get(between + "/{props}", get_binding)
    r.add_delete(between + "/{props}", delete_binding)
