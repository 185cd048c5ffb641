"""``/api/connections``, ``/api/channels`` and ``/api/consumers``.

Users tagged monitoring or administrator see every client; others see their
own connections only. Closing a connection sends ``connection.close`` with
320 CONNECTION_FORCED and the operator's reason (the ``X-Reason`` header), as
RabbitMQ does.
"""

from __future__ import annotations

from aiohttp import web

from pigeon.admin import shapes
from pigeon.admin.access import Forbidden
from pigeon.admin.source import ChannelLike, HandlerLike
from pigeon.admin.web import (
    Json,
    history_query,
    listing,
    monitor,
    no_content,
    ok,
    principal,
    visible_vhosts,
)
from pigeon.errors import NotFound

DEFAULT_REASON = "Closed via management plugin"


def _visible(request: web.Request) -> list[HandlerLike]:
    who = principal(request)
    vhost = request.match_info.get("vhost")
    return [
        h
        for h in monitor(request).handlers()
        if who.may_see_connection(h.username) and (vhost is None or h.describe().vhost == vhost)
    ]


def _by_name(request: web.Request) -> HandlerLike:
    mon = monitor(request)
    name = request.match_info["name"]
    for handler in _visible(request):
        if shapes.connection_name(handler, mon) == name:
            return handler
    raise NotFound(f"no connection '{name}'")


async def list_connections(request: web.Request) -> web.Response:
    mon = monitor(request)
    return listing(request, [shapes.connection_json(h, mon) for h in _visible(request)])


async def get_connection(request: web.Request) -> web.Response:
    rates = history_query(request, "msg_rates")
    return ok(shapes.connection_json(_by_name(request), monitor(request), rates))


async def close_connection(request: web.Request) -> web.Response:
    handler = _by_name(request)
    who = principal(request)
    if handler.username != who.name and not who.is_admin:
        raise Forbidden("Not administrator user")
    reason = request.headers.get("X-Reason") or DEFAULT_REASON
    handler.shutdown(f"CONNECTION_FORCED - {reason}")
    handler.want_flush()
    return no_content()


def _channel_rows(request: web.Request, handlers: list[HandlerLike]) -> list[Json]:
    mon = monitor(request)
    return [shapes.channel_json(h, c, mon) for h in handlers for c in h.channels.values()]


async def list_channels(request: web.Request) -> web.Response:
    return listing(request, _channel_rows(request, _visible(request)))


async def connection_channels(request: web.Request) -> web.Response:
    return listing(request, _channel_rows(request, [_by_name(request)]))


async def get_channel(request: web.Request) -> web.Response:
    mon, name = monitor(request), request.match_info["name"]
    for handler in _visible(request):
        prefix = shapes.connection_name(handler, mon)
        for channel in handler.channels.values():
            if f"{prefix} ({channel.number})" == name:
                rates = history_query(request, "msg_rates")
                return ok(shapes.channel_json(handler, channel, mon, rates))
    raise NotFound("no such channel")


def _channel_of(
    tag: str, owner: object, handlers: list[HandlerLike]
) -> tuple[HandlerLike, ChannelLike] | None:
    for handler in handlers:
        if handler is owner:
            for channel in handler.channels.values():
                if tag in channel.consumers:
                    return handler, channel
    return None


async def list_consumers(request: web.Request) -> web.Response:
    mon = monitor(request)
    who = principal(request)
    handlers = mon.handlers()
    rows = []
    for vhost in visible_vhosts(request):
        for queue in vhost.queues.values():
            for consumer in queue.consumers:
                channel = _channel_of(consumer.tag, consumer.owner, handlers)
                if channel is not None and not who.may_see_connection(channel[0].username):
                    continue
                rows.append(shapes.consumer_json(vhost.name, queue, consumer, channel, mon))
    return listing(request, rows)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/connections", list_connections)
    r.add_get("/api/vhosts/{vhost}/connections", list_connections)
    r.add_get("/api/connections/{name}", get_connection)
    r.add_delete("/api/connections/{name}", close_connection)
    r.add_get("/api/connections/{name}/channels", connection_channels)
    r.add_get("/api/channels", list_channels)
    r.add_get("/api/vhosts/{vhost}/channels", list_channels)
    r.add_get("/api/channels/{name}", get_channel)
    r.add_get("/api/consumers", list_consumers)
    r.add_get("/api/consumers/{vhost}", list_consumers)
