"""``/api/vhost-limits`` and ``/api/user-limits``: RabbitMQ's limits, set at run time.

Any management user may read them (as in RabbitMQ); only administrators set or
clear them. A vhost's ``max-queues`` is enforced by the vhost at declare time,
``max-connections`` of vhosts and users at ``connection.open`` and a user's
``max-channels`` at ``channel.open`` (``pigeon.operations.limits``).
"""

from __future__ import annotations

from aiohttp import web

from pigeon.admin.api_policies import vhost_not_found
from pigeon.admin.api_users import parse_user_limits
from pigeon.admin.web import (
    BadRequest,
    Json,
    audit,
    body,
    listing,
    monitor,
    no_content,
    principal,
    visible_vhosts,
)
from pigeon.auth.users import User
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotFound
from pigeon.operations.policy_definitions import parse_limits


def vhost_limit_rows(vhosts: list[VirtualHost]) -> list[Json]:
    return [
        {"vhost": v.name, "value": dict(v.policies.limits)} for v in vhosts if v.policies.limits
    ]


async def list_vhost_limits(request: web.Request) -> web.Response:
    return listing(request, vhost_limit_rows(visible_vhosts(request)))


def _one_vhost(request: web.Request) -> VirtualHost | None:
    return monitor(request).node.vhosts.get(request.match_info["vhost"])


async def _value(request: web.Request) -> object:
    data = await body(request)
    if "value" not in data:
        raise BadRequest("[{key_missing,value}]")
    return data["value"]


async def put_vhost_limit(request: web.Request) -> web.Response:
    principal(request).require_admin()
    vhost = _one_vhost(request)
    if vhost is None:
        return vhost_not_found()
    name = request.match_info["name"]
    limits = dict(vhost.policies.limits)
    limits.update(parse_limits({name: await _value(request)}))
    vhost.policies.set_limits(limits)
    audit(request, "vhost_limit.put", vhost=vhost.name, name=name)
    return no_content()


async def delete_vhost_limit(request: web.Request) -> web.Response:
    principal(request).require_admin()
    vhost = _one_vhost(request)
    if vhost is None:
        raise NotFound("no such vhost")
    limits = dict(vhost.policies.limits)
    limits.pop(request.match_info["name"], None)
    vhost.policies.set_limits(limits)
    audit(request, "vhost_limit.delete", vhost=vhost.name, name=request.match_info["name"])
    return no_content()


# -- users -------------------------------------------------------------------------------


def user_limit_rows(users: list[User]) -> list[Json]:
    return [{"user": u.name, "value": dict(u.limits)} for u in users if u.limits]


async def list_user_limits(request: web.Request) -> web.Response:
    users = monitor(request).users.users
    if "user" in request.match_info:
        user = users.get(request.match_info["user"])
        if user is None:
            raise NotFound("no such user")
        return listing(request, user_limit_rows([user]))
    return listing(request, user_limit_rows(list(users.values())))


async def put_user_limit(request: web.Request) -> web.Response:
    principal(request).require_admin()
    name, limit = request.match_info["user"], request.match_info["name"]
    user = monitor(request).users.users.get(name)
    if user is None:
        return web.json_response(
            {"error": "bad_request", "reason": ["no_such_user", name]}, status=400
        )
    monitor(request).users.set_limits(
        name, {**user.limits, **parse_user_limits({limit: await _value(request)})}
    )
    audit(request, "user_limit.put", user=name, name=limit)
    return no_content()


async def delete_user_limit(request: web.Request) -> web.Response:
    principal(request).require_admin()
    name = request.match_info["user"]
    user = monitor(request).users.users.get(name)
    if user is None:
        raise NotFound("no such user")
    limits = dict(user.limits)
    limits.pop(request.match_info["name"], None)
    monitor(request).users.set_limits(name, limits)
    audit(request, "user_limit.delete", user=name, name=request.match_info["name"])
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/vhost-limits", list_vhost_limits)
    r.add_get("/api/vhost-limits/{vhost}", list_vhost_limits)
    r.add_put("/api/vhost-limits/{vhost}/{name}", put_vhost_limit)
    r.add_delete("/api/vhost-limits/{vhost}/{name}", delete_vhost_limit)
    r.add_get("/api/user-limits", list_user_limits)
    r.add_get("/api/user-limits/{user}", list_user_limits)
    r.add_put("/api/user-limits/{user}/{name}", put_user_limit)
    r.add_delete("/api/user-limits/{user}/{name}", delete_user_limit)
