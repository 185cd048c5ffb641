"""``/api/vhosts``, ``/api/users`` and ``/api/permissions``.

Users are shown as definitions carry them (``pigeon.auth.users.user_row``): a
hash RabbitMQ can check when there is one, the scrypt hash otherwise.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pigeon.admin.rates import (
    QUEUE_COUNTERS,
    Counters,
    add_into,
    message_stats,
    queue_counters,
    vhost_own_counters,
)
from pigeon.admin.web import (
    BadRequest,
    Json,
    audit,
    body,
    listing,
    monitor,
    no_content,
    ok,
    principal,
    vhost_of,
    visible_vhosts,
)
from pigeon.auth.users import (
    Permission,
    TopicPermission,
    User,
    UserStore,
    parse_password_hash,
    user_from_row,
    user_row,
)
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotFound, PreconditionFailed
from pigeon.operations.policy_definitions import limit_value, term

# -- the user store: operations UserStore does not have yet ------------------------


def parse_tags(value: Any) -> frozenset[str]:
    """Tags as a list or RabbitMQ's older comma-separated string."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return frozenset(t.strip() for t in value if t.strip())
    raise BadRequest("tags must be a list of strings or a comma-separated string")


def decode_hash(value: Any, algorithm: Any) -> bytes:
    if not isinstance(value, str):
        raise BadRequest("password_hash must be a string")
    if algorithm is not None and not isinstance(algorithm, str):
        raise BadRequest("hashing_algorithm must be a string")
    try:
        return parse_password_hash(value, algorithm)
    except ValueError as error:
        raise BadRequest(str(error)) from None


def put_user(users: UserStore, name: str, data: Json) -> bool:
    """Create or update a user from an API or definitions body; True if created."""
    existing = users.users.get(name)
    tags = parse_tags(data.get("tags"))
    loopback = existing.loopback_only if existing is not None else False
    if "password" in data:
        password = data["password"]
        if not isinstance(password, str):
            raise BadRequest("password must be a string")
        user = users.new_user(name, password, tags, loopback_only=loopback)
    elif "password_hash" in data and "pigeon_password_hash" in data:
        try:  # Pigeon's own export: the scrypt hash with RabbitMQ's beside it
            user = user_from_row({**data, "name": name}, tags, loopback)
        except (ValueError, TypeError, AttributeError) as error:
            raise BadRequest(str(error)) from None
    elif "password_hash" in data:
        password_hash = decode_hash(data["password_hash"], data.get("hashing_algorithm"))
        user = User(name, password_hash, tags, loopback)
    elif existing is not None:
        user = User(name, existing.password_hash, tags, loopback, rabbit_hash=existing.rabbit_hash)
    else:
        raise BadRequest("password or password_hash is required for a new user")
    limits = dict(existing.limits) if existing is not None else {}
    if isinstance(data.get("limits"), dict):  # definitions carry a user's limits
        limits = parse_user_limits(data["limits"])
    user.limits = limits
    users.put_user(user)
    return existing is None


USER_LIMITS = ("max-connections", "max-channels")


def parse_user_limits(values: Json) -> dict[str, int]:
    """User limits from JSON, refused with RabbitMQ's texts."""
    unknown = [(k, v) for k, v in values.items() if k not in USER_LIMITS]
    if unknown:
        shown = ",".join(f"{{{term(k)},{term(v)}}}" for k, v in unknown)
        raise BadRequest(f"Unrecognised terms [{shown}] in user-limits")
    try:
        return {key: limit_value(key, value) for key, value in values.items()}
    except PreconditionFailed as refused:
        raise BadRequest(refused.text) from None


def user_json(user: User) -> Json:
    return user_row(user)


def permission_json(vhost: str, user: str, permission: Permission) -> Json:
    return {
        "user": user,
        "vhost": vhost,
        "configure": permission.configure,
        "write": permission.write,
        "read": permission.read,
    }


# -- vhosts ------------------------------------------------------------------------


def vhost_json(request: web.Request, vhost: VirtualHost) -> Json:
    mon = monitor(request)
    ready = sum(len(q.ready) for q in vhost.queues.values())
    unacked = sum(q.unacked for q in vhost.queues.values())
    series = mon.sampler.vhost_series(vhost.name)
    counters: Counters = dict.fromkeys(QUEUE_COUNTERS, 0)
    for queue in vhost.queues.values():
        add_into(counters, queue_counters(queue))
    add_into(counters, vhost_own_counters(vhost))
    return {
        "name": vhost.name,
        "description": "",
        "tags": [],
        "default_queue_type": "classic",
        "metadata": {"description": "", "tags": []},
        "tracing": False,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        # Pigeon's own (RabbitMQ shows none): topics holding an MQTT retained message.
        "retained_messages": len(vhost.retained),
        "message_stats": message_stats(counters, series, mon.window),
        "cluster_state": {mon.node.name: "running"},
    }


async def list_vhosts(request: web.Request) -> web.Response:
    return listing(request, [vhost_json(request, v) for v in visible_vhosts(request)])


async def get_vhost(request: web.Request) -> web.Response:
    return ok(vhost_json(request, vhost_of(request, request.match_info["name"])))


async def put_vhost(request: web.Request) -> web.Response:
    who = principal(request)
    who.require_admin()
    await body(request)
    name = request.match_info["name"]
    mon = monitor(request)
    if name in mon.node.vhosts:
        return no_content()
    mon.node.add_vhost(name)
    # As RabbitMQ's API does: whoever creates a vhost may use it.
    mon.users.set_permission(name, who.name)
    audit(request, "vhost.put", vhost=name)
    return no_content(201)


async def delete_vhost(request: web.Request) -> web.Response:
    principal(request).require_admin()
    name = request.match_info["name"]
    mon = monitor(request)
    mon.node.delete_vhost(name)
    mon.users.delete_vhost_permissions(name)
    audit(request, "vhost.delete", vhost=name)
    return no_content()


# -- users -------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    principal(request).require_admin()
    users = monitor(request).users.users.values()
    return listing(request, [user_json(u) for u in users])


def _user(request: web.Request) -> User:
    users = monitor(request).users
    name = request.match_info["name"]
    user = users.users.get(name)
    if user is None:
        raise NotFound(f"no user '{name}'")
    return user


async def get_user(request: web.Request) -> web.Response:
    principal(request).require_admin()
    return ok(user_json(_user(request)))


async def put_user_handler(request: web.Request) -> web.Response:
    principal(request).require_admin()
    created = put_user(monitor(request).users, request.match_info["name"], await body(request))
    audit(request, "user.put", user=request.match_info["name"])
    return no_content(201 if created else 204)


async def delete_user(request: web.Request) -> web.Response:
    principal(request).require_admin()
    users = monitor(request).users
    user = _user(request)
    users.delete_user(user.name)
    audit(request, "user.delete", user=user.name)
    return no_content()


async def user_permissions(request: web.Request) -> web.Response:
    principal(request).require_admin()
    user = _user(request)
    rows = [
        permission_json(v, u, p)
        for (v, u), p in monitor(request).users.permissions.items()
        if u == user.name
    ]
    return listing(request, rows)


# -- permissions -----------------------------------------------------------------------


async def list_permissions(request: web.Request) -> web.Response:
    principal(request).require_admin()
    only = request.match_info.get("vhost")
    rows = [
        permission_json(v, u, p)
        for (v, u), p in monitor(request).users.permissions.items()
        if only is None or v == only
    ]
    return listing(request, rows)


def _permission_key(request: web.Request) -> tuple[str, str]:
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    mon = monitor(request)
    if vhost not in mon.node.vhosts:
        raise NotFound(f"no vhost '{vhost}'")
    if user not in mon.users.users:
        raise NotFound(f"no user '{user}'")
    return vhost, user


async def get_permission(request: web.Request) -> web.Response:
    principal(request).require_admin()
    key = _permission_key(request)
    permission = monitor(request).users.permissions.get(key)
    if permission is None:
        raise NotFound("no such permission")
    return ok(permission_json(*key, permission))


def permission_from(data: Json) -> Permission:
    values = {}
    for kind in ("configure", "write", "read"):
        value = data.get(kind)
        if not isinstance(value, str):
            raise BadRequest(f"'{kind}' (a regular expression) is required")
        values[kind] = value
    return Permission(**values)


async def put_permission(request: web.Request) -> web.Response:
    principal(request).require_admin()
    vhost, user = _permission_key(request)
    users = monitor(request).users
    existed = (vhost, user) in users.permissions
    permission = permission_from(await body(request))
    users.set_permission(vhost, user, permission)
    audit(
        request,
        "permission.put",
        vhost=vhost,
        user=user,
        configure=permission.configure,
        write=permission.write,
        read=permission.read,
    )
    return no_content(204 if existed else 201)


async def delete_permission(request: web.Request) -> web.Response:
    principal(request).require_admin()
    key = _permission_key(request)
    if not monitor(request).users.delete_permission(*key):
        raise NotFound("no such permission")
    audit(request, "permission.delete", vhost=key[0], user=key[1])
    return no_content()


# -- topic permissions ------------------------------------------------------------------


def topic_permission_json(vhost: str, user: str, permission: TopicPermission) -> Json:
    return {
        "user": user,
        "vhost": vhost,
        "exchange": permission.exchange,
        "write": permission.write,
        "read": permission.read,
    }


def topic_permission_from(data: Json) -> TopicPermission:
    values = {}
    for kind in ("exchange", "write", "read"):
        value = data.get(kind)
        if not isinstance(value, str):
            raise BadRequest(f"'{kind}' is required")
        values[kind] = value
    return TopicPermission(**values)


async def list_topic_permissions(request: web.Request) -> web.Response:
    principal(request).require_admin()
    users = monitor(request).users
    wanted = request.match_info.get("vhost"), request.match_info.get("user")
    rows = [
        topic_permission_json(v, u, t)
        for (v, u), by_x in users.topic_permissions.items()
        for t in by_x.values()
        if wanted[0] in (None, v) and wanted[1] in (None, u)
    ]
    return listing(request, rows)


async def put_topic_permission(request: web.Request) -> web.Response:
    principal(request).require_admin()
    vhost, user = _permission_key(request)
    permission = topic_permission_from(await body(request))
    monitor(request).users.set_topic_permission(vhost, user, permission)
    audit(
        request,
        "topic_permission.put",
        vhost=vhost,
        user=user,
        exchange=permission.exchange,
        write=permission.write,
        read=permission.read,
    )
    return no_content(201)


async def delete_topic_permission(request: web.Request) -> web.Response:
    principal(request).require_admin()
    vhost, user = _permission_key(request)
    monitor(request).users.clear_topic_permissions(vhost, user, request.query.get("exchange"))
    audit(request, "topic_permission.delete", vhost=vhost, user=user)
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/vhosts", list_vhosts)
    r.add_get("/api/vhosts/{name}", get_vhost)
    r.add_put("/api/vhosts/{name}", put_vhost)
    r.add_delete("/api/vhosts/{name}", delete_vhost)
    r.add_get("/api/vhosts/{vhost}/permissions", list_permissions)
    r.add_get("/api/users", list_users)
    r.add_get("/api/users/{name}", get_user)
    r.add_put("/api/users/{name}", put_user_handler)
    r.add_delete("/api/users/{name}", delete_user)
    r.add_get("/api/topic-permissions", list_topic_permissions)
    r.add_get("/api/topic-permissions/{vhost}", list_topic_permissions)
    r.add_get("/api/topic-permissions/{vhost}/{user}", list_topic_permissions)
    r.add_put("/api/topic-permissions/{vhost}/{user}", put_topic_permission)
    r.add_delete("/api/topic-permissions/{vhost}/{user}", delete_topic_permission)
    r.add_get("/api/users/{name}/permissions", user_permissions)
    r.add_get("/api/permissions", list_permissions)
    r.add_get("/api/permissions/{vhost}/{user}", get_permission)
    r.add_put("/api/permissions/{vhost}/{user}", put_permission)
    r.add_delete("/api/permissions/{vhost}/{user}", delete_permission)
