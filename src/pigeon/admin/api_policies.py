"""``/api/policies``, ``/api/operator-policies``, ``/api/parameters``, ``/api/global-parameters``.

Shapes, codes and rights as RabbitMQ 3.10's management API: listing needs a
management tag (and shows the vhosts the user has permissions in), reading or
changing one policy or parameter needs ``policymaker`` or ``administrator``,
operator policies are changed by administrators only. Every change goes to
the vhost (:meth:`pigeon.core.vhost.VirtualHost.set_policy`), which applies
it to the matching queues and exchanges at once.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from pigeon.admin.access import Forbidden
from pigeon.admin.web import (
    BadRequest,
    Json,
    audit,
    body,
    error,
    listing,
    monitor,
    no_content,
    ok,
    principal,
)
from pigeon.core.node import Node
from pigeon.core.policy import Policy
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotFound, PreconditionFailed
from pigeon.operations.policy_definitions import parse_limits, parse_policy

POLICY, OPERATOR_POLICY, VHOST_LIMITS = "policy", "operator_policy", "vhost-limits"


def vhost_not_found() -> web.Response:
    return error(404, "not_found", "vhost_not_found")


def _usable_vhosts(request: web.Request) -> list[VirtualHost]:
    """The vhost in the path, or every vhost the user has permissions in."""
    node = monitor(request).node
    who = principal(request)
    if "vhost" in request.match_info:
        vhost = node.vhosts.get(request.match_info["vhost"])
        if vhost is None:
            raise NotFound("no such vhost")
        if not who.may_use_vhost(vhost.name):
            raise Forbidden("User not authorised to access virtual host")
        return [vhost]
    return [v for v in node.vhosts.values() if who.may_use_vhost(v.name)]


def _sorted(policies: list[Policy]) -> list[Json]:
    """Lowest priority first, as RabbitMQ lists them."""
    return [p.json() for p in sorted(policies, key=lambda p: (p.priority, p.name))]


# -- policies and operator policies -----------------------------------------------------


def _operator(request: web.Request) -> bool:
    return request.path.startswith("/api/operator-policies")


async def list_policies(request: web.Request) -> web.Response:
    operator = _operator(request)
    rows = _sorted(
        [p for v in _usable_vhosts(request) for p in v.policies.table(operator).values()]
    )
    return listing(request, rows)


def _may_change(request: web.Request) -> None:
    who = principal(request)
    if _operator(request):
        who.require_admin()
    else:
        who.require_policymaker()


async def get_policy(request: web.Request) -> web.Response:
    _may_change(request)
    vhost = _usable_vhosts(request)[0]
    policy = vhost.policies.table(_operator(request)).get(request.match_info["name"])
    if policy is None:
        raise NotFound("no such policy")
    return ok(policy.json())


async def put_policy(request: web.Request) -> web.Response:
    _may_change(request)
    operator = _operator(request)
    if request.match_info["vhost"] not in monitor(request).node.vhosts:
        return vhost_not_found()
    vhost = _usable_vhosts(request)[0]
    name = request.match_info["name"]
    data = await body(request)
    try:
        policy = parse_policy(vhost.name, name, data, operator=operator)
    except PreconditionFailed as refused:
        # RabbitMQ's policy resource escapes its reason as HTML; the operator one does not.
        raise BadRequest(
            refused.text if operator else html.escape(refused.text, quote=False)
        ) from None
    created = vhost.set_policy(policy, operator=operator)
    audit(request, f"{'operator_' if operator else ''}policy.put", vhost=vhost.name, name=name)
    return no_content(201 if created else 204)


async def delete_policy(request: web.Request) -> web.Response:
    _may_change(request)
    operator = _operator(request)
    vhost = _usable_vhosts(request)[0]
    name = request.match_info["name"]
    vhost.clear_policy(name, operator=operator)
    audit(request, f"{'operator_' if operator else ''}policy.delete", vhost=vhost.name, name=name)
    return no_content()


# -- runtime parameters ---------------------------------------------------------------


def parameter_rows(node: Node, vhosts: list[VirtualHost], component: str | None) -> list[Json]:
    """Runtime parameters as RabbitMQ lists them; all components leave policies out."""
    names = {v.name for v in vhosts}
    rows: list[Json] = []
    for vhost in vhosts:
        if component in (None, VHOST_LIMITS) and vhost.policies.limits:
            rows.append(_parameter(VHOST_LIMITS, vhost.name, "limits", dict(vhost.policies.limits)))
        for kind, operator in ((OPERATOR_POLICY, True), (POLICY, False)):
            if component == kind or (component is None and operator):
                rows.extend(
                    _parameter(kind, vhost.name, p.name, p.value())
                    for p in vhost.policies.table(operator).values()
                )
    rows.extend(
        _parameter(c, v, n, value)
        for (c, v, n), value in node.parameters.values.items()
        if v in names and component in (None, c)
    )
    return rows


def _parameter(component: str, vhost: str, name: str, value: Any) -> Json:
    return {"value": value, "vhost": vhost, "component": component, "name": name}


async def list_parameters(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    node = monitor(request).node
    return listing(
        request, parameter_rows(node, _usable_vhosts(request), request.match_info.get("component"))
    )


async def get_parameter(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    node = monitor(request).node
    name = request.match_info["name"]
    for row in parameter_rows(node, _usable_vhosts(request), request.match_info["component"]):
        if row["name"] == name:
            return ok(row)
    raise NotFound("no such parameter")


async def put_parameter(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    node = monitor(request).node
    if request.match_info["vhost"] not in node.vhosts:
        return vhost_not_found()
    vhost = _usable_vhosts(request)[0]
    component, name = request.match_info["component"], request.match_info["name"]
    data = await body(request)
    if "value" not in data:
        raise BadRequest("[{key_missing,value}]")
    if component == POLICY:  # RabbitMQ sends policies to their own endpoint
        raise BadRequest("policies may not be set using this method")
    created = set_parameter(node, vhost, component, name, data["value"])
    audit(request, "parameter.put", vhost=vhost.name, component=component, name=name)
    return no_content(201 if created else 204)


def set_parameter(node: Node, vhost: VirtualHost, component: str, name: str, value: Any) -> bool:
    """One runtime parameter, from the API or definitions; True if it is new."""
    if component in (POLICY, OPERATOR_POLICY):
        if not isinstance(value, dict):
            raise PreconditionFailed("Validation failed\n\npolicy must be a JSON object\n")
        for key in ("priority", "pattern", "definition"):  # mandatory as a parameter
            if key not in value:
                raise PreconditionFailed(f'Validation failed\n\nKey "{key}" not found in {name}\n')
        operator = component == OPERATOR_POLICY
        return vhost.set_policy(
            parse_policy(vhost.name, name, value, operator=operator), operator=operator
        )
    if component == VHOST_LIMITS:
        if not isinstance(value, dict):
            raise PreconditionFailed("Validation failed\n\nlimits must be a JSON object\n")
        created = not vhost.policies.limits
        vhost.policies.set_limits(parse_limits(value))
        return created
    return node.parameters.set(component, vhost.name, name, value)


async def delete_parameter(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    node = monitor(request).node
    vhost = _usable_vhosts(request)[0]
    component, name = request.match_info["component"], request.match_info["name"]
    if component == POLICY:
        raise BadRequest("policies may not be cleared using this method")
    if component == OPERATOR_POLICY:
        vhost.clear_policy(name, operator=True)
    elif component == VHOST_LIMITS:
        vhost.policies.set_limits({})
    else:
        node.parameters.clear(component, vhost.name, name)
    audit(request, "parameter.delete", vhost=vhost.name, component=component, name=name)
    return no_content()


# -- global parameters ---------------------------------------------------------------


def global_rows(node: Node) -> list[Json]:
    return [{"name": name, "value": value} for name, value in node.parameters.global_values.items()]


async def list_global_parameters(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    return listing(request, global_rows(monitor(request).node))


async def get_global_parameter(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    name = request.match_info["name"]
    values = monitor(request).node.parameters.global_values
    if name not in values:
        raise NotFound("no such global parameter")
    return ok({"value": values[name], "name": name})


async def put_global_parameter(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    data = await body(request)
    if "value" not in data:
        raise BadRequest("[{key_missing,value}]")
    name = request.match_info["name"]
    created = monitor(request).node.parameters.set_global(name, data["value"])
    audit(request, "global_parameter.put", name=name)
    return no_content(201 if created else 204)


async def delete_global_parameter(request: web.Request) -> web.Response:
    principal(request).require_policymaker()
    name = request.match_info["name"]
    monitor(request).node.parameters.clear_global(name)
    audit(request, "global_parameter.delete", name=name)
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    for base in ("/api/policies", "/api/operator-policies"):
        r.add_get(base, list_policies)
        r.add_get(base + "/{vhost}", list_policies)
        r.add_get(base + "/{vhost}/{name}", get_policy)
        r.add_put(base + "/{vhost}/{name}", put_policy)
        r.add_delete(base + "/{vhost}/{name}", delete_policy)
    r.add_get("/api/parameters", list_parameters)
    r.add_get("/api/parameters/{component}", list_parameters)
    r.add_get("/api/parameters/{component}/{vhost}", list_parameters)
    r.add_get("/api/parameters/{component}/{vhost}/{name}", get_parameter)
    r.add_put("/api/parameters/{component}/{vhost}/{name}", put_parameter)
    r.add_delete("/api/parameters/{component}/{vhost}/{name}", delete_parameter)
    r.add_get("/api/global-parameters", list_global_parameters)
    r.add_get("/api/global-parameters/{name}", get_global_parameter)
    r.add_put("/api/global-parameters/{name}", put_global_parameter)
    r.add_delete("/api/global-parameters/{name}", delete_global_parameter)
