"""What every API handler shares: errors as RabbitMQ answers them, request bodies, listings.

Errors: a core ``NotFound`` is 404; any other core refusal (inequivalent
redeclare, reserved name, exclusive lock) is 400 with the core's text as the
reason; missing credentials are 401 with a basic-auth challenge; a user
without the right tag or permission is 401 too (RabbitMQ's choice, which
clients rely on).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from pigeon.admin.access import Forbidden, NotAuthenticated, Principal, authenticate
from pigeon.admin.monitor import Monitor
from pigeon.auth.authorization import PermissionRefused
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotFound, PigeonError
from pigeon.operations.client import Client
from pigeon.storage.durable import until_durable

Json = dict[str, Any]
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MONITOR = web.AppKey("monitor", Monitor)
PRINCIPAL = web.RequestKey("principal", Principal)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Basic realm="RabbitMQ Management"'
# Paths anyone may read: the UI's files, and Prometheus scrapes (no auth, as in RabbitMQ).
PUBLIC = re.compile(r"^/($|index\.html$|static/|metrics(/per-object|/detailed)?$|favicon\.ico$)")


class BadRequest(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def error(status: int, kind: str, reason: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": kind, "reason": reason}, status=status, headers=headers or None
    )


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def no_content(status: int = 204) -> web.Response:
    return web.Response(status=status)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str)


def _is_loopback(request: web.Request) -> bool:
    remote = request.remote or ""
    return remote.startswith("127.") or remote in ("::1", "localhost") or remote == ""


def _peer(request: web.Request) -> str:
    """``host:port`` of the client, as AMQP connections name their peer."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    return f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else ""


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, then turn every refusal into RabbitMQ's error shape."""
    if isinstance(request.match_info.http_exception, web.HTTPNotFound):
        # No such path: nothing to protect, so no credentials asked for (RabbitMQ: 404).
        return error(404, "Object Not Found", "Not Found")
    try:
        if not PUBLIC.match(request.path):
            monitor = request.app[MONITOR]
            request[PRINCIPAL] = await authenticate(
                monitor.users,
                request.headers.get("Authorization"),
                loopback=_is_loopback(request),
                peer=_peer(request),
                gate=monitor.logins,
            )
        return await handler(request)
    except NotAuthenticated as refused:
        # The UI sends X-Requested-With so the browser does not pop up its own login box.
        challenge = {} if request.headers.get("X-Requested-With") else {"WWW-Authenticate": REALM}
        return error(401, "not_authorized", refused.reason, **challenge)
    except Forbidden as refused:
        return error(401, "not_authorised", refused.reason)
    except PermissionRefused as refused:  # the operations layer's permission check
        return error(401, "not_authorised", refused.text)
    except NotFound:
        return error(404, "Object Not Found", "Not Found")
    except BadRequest as bad:
        return error(400, "bad_request", bad.reason)
    except PigeonError as refused:
        return error(400, "bad_request", refused.text)
    except web.HTTPRequestEntityTooLarge:
        return error(413, "bad_request", "request body too large")


@web.middleware
async def on_disk(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A change answers once it is on disk (issue 13): every request that may change
    something waits, after its handler, for the store's barrier; a read does not."""
    response = await handler(request)
    if request.method not in SAFE_METHODS:
        await until_durable(request.app[MONITOR].node.store)
    return response


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def monitor(request: web.Request) -> Monitor:
    return request.app[MONITOR]


def audit(request: web.Request, action: str, **details: Any) -> None:
    """An audit line for a change made through the API (users, permissions, vhosts,
    definitions), when the broker keeps an audit log."""
    context = monitor(request).broker.context
    log = getattr(context, "audit", None)
    if log is not None:
        log.changed(principal(request).name, action, **details)


def client(request: web.Request, vhost: VirtualHost) -> Client:
    """The operations layer on ``vhost`` as the request's user: every check of an action
    (declare, delete, bind, publish, get, purge) is made there, as for AMQP."""
    services = monitor(request).broker.context
    assert services is not None, "the management API runs while the broker does"
    return Client(services, vhost, principal(request).identity)


def vhost_of(request: web.Request, name: str | None = None) -> VirtualHost:
    """The vhost named in the path, if it exists and the user may see it."""
    name = request.match_info["vhost"] if name is None else name
    vhost = monitor(request).vhost(name)
    if vhost is None:
        raise NotFound(f"no vhost '{name}'")
    principal(request).require_vhost(name)
    return vhost


def visible_vhosts(request: web.Request) -> list[VirtualHost]:
    """The vhost in the path, or every vhost the user may see."""
    if "vhost" in request.match_info:
        return [vhost_of(request)]
    who = principal(request)
    return [v for v in monitor(request).node.vhosts.values() if who.may_see_vhost(v.name)]


async def body(request: web.Request) -> Json:
    """The JSON object sent, or {} for an empty body (RabbitMQ accepts both)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as problem:
        raise BadRequest(f"failed to decode JSON: {problem}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def flag(data: Json, key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def arguments(data: Json) -> Json:
    value = data.get("arguments") or {}
    if not isinstance(value, dict):
        raise BadRequest("arguments must be a JSON object")
    return value


def history_query(request: web.Request, kind: str) -> tuple[float, float] | None:
    """RabbitMQ's ``{kind}_age`` and ``{kind}_incr`` (seconds), ``kind`` being ``lengths``
    (queue depths) or ``msg_rates`` (message counters): the sample history asked for."""
    age = request.query.get(f"{kind}_age")
    if age is None:
        return None
    try:
        return float(age), float(request.query.get(f"{kind}_incr") or 5)
    except ValueError:
        raise BadRequest(f"{kind}_age and {kind}_incr must be numbers") from None


def lazy_listing(
    request: web.Request,
    objects: list[tuple[str, str, T]],
    build: Callable[[str, T], Json],
    sort_keys: Mapping[str, Callable[[T], Any]] | None = None,
) -> web.Response:
    """:func:`listing` of (vhost, name, object) that builds the JSON of one page only,
    when the sort needs nothing else (none, name, vhost, or one of ``sort_keys``, read
    from the object): 10,000 queues page quickly."""
    query = request.query
    sort = query.get("sort") or ""
    keys: dict[str, Callable[[tuple[str, str, T]], Any]] = {
        "vhost": lambda o: o[0],
        "name": lambda o: o[1],
        **{column: _on_object(read) for column, read in (sort_keys or {}).items()},
    }
    if "page" not in query or (sort and sort not in keys):
        return listing(request, [build(vhost, thing) for vhost, _, thing in objects])
    total = len(objects)
    if name := query.get("name"):
        pattern = _name_filter(name, query.get("use_regex") == "true")
        objects = [o for o in objects if pattern.search(o[1])]
    if sort:
        read = keys[sort]
        objects = sorted(
            objects,
            key=lambda o: _sort_key(read(o)),
            reverse=query.get("sort_reverse") == "true",
        )
    page = _page(objects, query.get("page", "1"), query.get("page_size", "100"), total)
    rows = [build(vhost, thing) for vhost, _, thing in page["items"]]
    if columns := query.get("columns"):
        rows = [_columns(r, columns.split(",")) for r in rows]
    page["items"] = rows
    return ok(page)


def _on_object(read: Callable[[T], Any]) -> Callable[[tuple[str, str, T]], Any]:
    return lambda o: read(o[2])


def listing(request: web.Request, rows: list[Json]) -> web.Response:
    """Sorting, column selection and pagination, as RabbitMQ's list endpoints do."""
    query = request.query
    total = len(rows)
    if name := query.get("name"):
        pattern = _name_filter(name, query.get("use_regex") == "true")
        rows = [r for r in rows if pattern.search(str(r.get("name", "")))]
    if sort := query.get("sort"):
        rows.sort(
            key=lambda r: _sort_key(_dig(r, sort)), reverse=query.get("sort_reverse") == "true"
        )
    if columns := query.get("columns"):
        rows = [_columns(r, columns.split(",")) for r in rows]
    if "page" not in query:
        return ok(rows)
    return ok(_page(rows, query.get("page", "1"), query.get("page_size", "100"), total))


def _name_filter(name: str, regex: bool) -> re.Pattern[str]:
    try:
        return re.compile(name if regex else re.escape(name), re.IGNORECASE)
    except re.error as problem:
        raise BadRequest(f"bad name filter: {problem}") from None


def _page(rows: list[Any], page_text: str, size_text: str, total: int | None = None) -> Json:
    try:
        page, size = int(page_text), int(size_text)
    except ValueError:
        raise BadRequest("page and page_size must be integers") from None
    if page < 1 or not 1 <= size <= 500:
        raise BadRequest("page must be >= 1 and page_size 1..500")
    items = rows[(page - 1) * size : page * size]
    return {
        "filtered_count": len(rows),
        "item_count": len(items),
        "items": items,
        "page": page,
        "page_count": max(1, -(-len(rows) // size)),
        "page_size": size,
        "total_count": len(rows) if total is None else total,
    }


def _dig(row: Json, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool | int | float):
        return (0, value)
    return (1, "" if value is None else str(value))


def _columns(row: Json, columns: list[str]) -> Json:
    picked: Json = {}
    for column in columns:
        value = _dig(row, column)
        parts = column.split(".")
        target = picked
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return picked
