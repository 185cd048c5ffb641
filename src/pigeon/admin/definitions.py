"""``/api/definitions``: export and import in RabbitMQ's definitions JSON.

The file RabbitMQ's ``rabbitmqadmin export`` writes imports here, and the file
Pigeon exports imports into RabbitMQ: same keys, same user password hashes.
The import applies users (with their limits), vhosts, permissions, topic
permissions, runtime parameters (operator policies, vhost limits, plugin
components), global parameters, policies, exchanges, queues and bindings in
that order, each through the same calls the API's PUTs use.
The node's own name is never exported as ``cluster_name`` (only a cluster_name
global parameter someone set, as RabbitMQ does). ``?for=rabbitmq`` leaves out
what would harm the RabbitMQ cluster that imports it: node-specific global
parameters (``cluster_name`` would rename it) and the users RabbitMQ could not
log in (only a scrypt hash: see ``definitions_password_hashing``), which it
names in ``pigeon_users_left_out``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pigeon.admin import api_policies, api_users
from pigeon.admin.monitor import Monitor
from pigeon.admin.shapes import jsonable
from pigeon.admin.web import (
    BadRequest,
    Json,
    audit,
    body,
    monitor,
    no_content,
    ok,
    principal,
)
from pigeon.core.binding import DestinationKind
from pigeon.core.vhost import DEFAULT_EXCHANGES, VirtualHost
from pigeon.errors import PigeonError
from pigeon.operations.policy_definitions import parse_policy
from pigeon.version import __version__

# Global parameters that name this node or cluster: left out of an export for RabbitMQ,
# where they would rename the cluster that imports them.
NODE_SPECIFIC = frozenset({"cluster_name", "internal_cluster_id"})


def export(mon: Monitor, only: str | None = None, *, for_rabbitmq: bool = False) -> Json:
    vhosts = [v for v in mon.node.vhosts.values() if only is None or v.name == only]
    result: Json = {
        "rabbit_version": __version__,
        "rabbitmq_version": __version__,
        "product_name": "Pigeon",
        "product_version": __version__,
        "queues": [_queue(v, q.name) for v in vhosts for q in v.queues.values() if not q.exclusive],
        "exchanges": [
            _exchange(v, name)
            for v in vhosts
            for name in v.exchanges
            if name not in DEFAULT_EXCHANGES
        ],
        "bindings": [_binding(v.name, b) for v in vhosts for b in v.bindings()],
        "policies": [
            p.json()
            for v in vhosts
            for p in sorted(v.policies.policies.values(), key=lambda p: (p.priority, p.name))
        ],
        "parameters": api_policies.parameter_rows(mon.node, vhosts, None),
    }
    if only is None:
        users = mon.users.users.values()
        stay = {u.name for u in users if for_rabbitmq and u.portable_hash is None}
        result.update(
            {
                "users": [api_users.user_json(u) for u in users if u.name not in stay],
                "vhosts": [
                    {"name": v.name, "limits": [], "metadata": {"description": "", "tags": []}}
                    for v in vhosts
                ],
                "permissions": [
                    api_users.permission_json(v, u, p)
                    for (v, u), p in mon.users.permissions.items()
                    if u not in stay
                ],
                "topic_permissions": [
                    api_users.topic_permission_json(v, u, t)
                    for (v, u), by_x in mon.users.topic_permissions.items()
                    if u not in stay
                    for t in by_x.values()
                ],
                "global_parameters": [
                    r
                    for r in api_policies.global_rows(mon.node)
                    if not (for_rabbitmq and r["name"] in NODE_SPECIFIC)
                ],
            }
        )
        if for_rabbitmq:
            result["pigeon_users_left_out"] = sorted(stay)
    return result


def _queue(vhost: VirtualHost, name: str) -> Json:
    queue = vhost.queues[name]
    return {
        "name": name,
        "vhost": vhost.name,
        "durable": queue.durable,
        "auto_delete": queue.auto_delete,
        "arguments": jsonable(queue.arguments),
    }


def _exchange(vhost: VirtualHost, name: str) -> Json:
    exchange = vhost.exchanges[name]
    return {
        "name": name,
        "vhost": vhost.name,
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": jsonable(exchange.arguments),
    }


def _binding(vhost: str, binding: Any) -> Json:
    return {
        "source": binding.source,
        "vhost": vhost,
        "destination": binding.destination,
        "destination_type": str(binding.destination_kind),
        "routing_key": binding.routing_key,
        "arguments": jsonable(binding.argument_dict),
    }


def _rows(data: Json, key: str) -> list[Json]:
    rows = data.get(key) or []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BadRequest(f"'{key}' must be a list of objects")
    return rows


def _text(row: Json, key: str, default: str | None = None) -> str:
    value = row.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string in {row!r}")
    return value


def _target(mon: Monitor, row: Json, only: str | None) -> VirtualHost:
    name = only if only is not None else _text(row, "vhost", "/")
    vhost = mon.node.vhosts.get(name)
    if vhost is None:
        raise BadRequest(f"vhost '{name}' does not exist")
    return vhost


def apply(mon: Monitor, data: Json, acting_user: str, only: str | None = None) -> None:
    """Import definitions; raises BadRequest naming the first item that failed."""
    if only is None:
        with mon.users.batch():  # the users are saved once, not once per row
            _apply_accounts(mon, data)
    try:
        if only is None:
            for row in _rows(data, "global_parameters"):
                mon.node.parameters.set_global(_text(row, "name"), row.get("value"))
        _apply_policies(mon, data, only)
        _apply_topology(mon, data, only)
    except PigeonError as refused:
        raise BadRequest(refused.text) from None


def _apply_accounts(mon: Monitor, data: Json) -> None:
    for row in _rows(data, "users"):
        api_users.put_user(mon.users, _text(row, "name"), row)
    for row in _rows(data, "vhosts"):
        name = _text(row, "name")
        if name not in mon.node.vhosts:
            mon.node.add_vhost(name)
    for row in _rows(data, "permissions"):
        mon.users.set_permission(
            _text(row, "vhost"), _text(row, "user"), api_users.permission_from(row)
        )
    for row in _rows(data, "topic_permissions"):
        mon.users.set_topic_permission(
            _text(row, "vhost"), _text(row, "user"), api_users.topic_permission_from(row)
        )


def _apply_policies(mon: Monitor, data: Json, only: str | None) -> None:
    for row in _rows(data, "parameters"):
        vhost = _target(mon, row, only)
        api_policies.set_parameter(
            mon.node, vhost, _text(row, "component"), _text(row, "name"), row.get("value")
        )
    for row in _rows(data, "policies"):
        vhost = _target(mon, row, only)
        vhost.set_policy(parse_policy(vhost.name, _text(row, "name"), row))


def _apply_topology(mon: Monitor, data: Json, only: str | None) -> None:
    for row in _rows(data, "exchanges"):
        vhost = _target(mon, row, only)
        vhost.declare_exchange(
            _text(row, "name"),
            _text(row, "type", "direct"),
            durable=bool(row.get("durable", True)),
            auto_delete=bool(row.get("auto_delete")),
            internal=bool(row.get("internal")),
            arguments=row.get("arguments") or {},
        )
    for row in _rows(data, "queues"):
        vhost = _target(mon, row, only)
        vhost.declare_queue(
            _text(row, "name"),
            owner=None,
            durable=bool(row.get("durable", True)),
            auto_delete=bool(row.get("auto_delete")),
            arguments=row.get("arguments") or {},
        )
    for row in _rows(data, "bindings"):
        vhost = _target(mon, row, only)
        kind = DestinationKind(_text(row, "destination_type", "queue"))
        vhost.bind(
            _text(row, "source"),
            _text(row, "destination"),
            kind,
            _text(row, "routing_key", ""),
            row.get("arguments") or {},
        )


async def get_definitions(request: web.Request) -> web.Response:
    principal(request).require_admin()
    only = request.match_info.get("vhost")
    target = request.query.get("for")
    if target not in (None, "rabbitmq"):
        raise BadRequest(f"for={target!r}: the only export target is 'rabbitmq'")
    data = export(monitor(request), only, for_rabbitmq=target == "rabbitmq")
    headers = {}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{request.query["download"]}"'
    response = ok(data)
    response.headers.update(headers)
    return response


async def post_definitions(request: web.Request) -> web.Response:
    who = principal(request)
    who.require_admin()
    data = await body(request)
    only = request.match_info.get("vhost")
    if only is not None and only not in monitor(request).node.vhosts:
        raise BadRequest(f"vhost '{only}' does not exist")
    apply(monitor(request), data, who.name, only)
    audit(request, "definitions.import", vhost=only)
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/definitions", get_definitions)
    r.add_post("/api/definitions", post_definitions)
    r.add_get("/api/definitions/{vhost}", get_definitions)
    r.add_post("/api/definitions/{vhost}", post_definitions)
