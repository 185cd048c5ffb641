"""Cluster health checks (docs/cluster.md, "Operating a cluster").

RabbitMQ's endpoints, as they map onto stateless front-ends on JetStream:

- ``ready-to-serve-clients``: the node listens and, in cluster mode, is connected
  to NATS and JetStream answers (it has a meta leader); 503 otherwise.
- ``node-is-quorum-critical`` and ``node-is-mirror-sync-critical``: always ok. A
  Pigeon node holds no replica (queues' replicas are JetStream servers'), so
  stopping it never costs a queue its quorum; the servers' own quorum shows in
  ``cluster``.
- ``cluster`` (Pigeon's own): NATS connection, JetStream and its meta leader, the
  durability mode and the nodes running; 503 when NATS or JetStream cannot be used.

``DELETE /api/nodes/{node}`` (rabbitmqctl's ``forget_cluster_node``) drops a node
that is not running from the cluster's list.
"""

from __future__ import annotations

from aiohttp import web

from pigeon.admin.source import cluster_of
from pigeon.admin.web import Json, error, monitor, no_content, ok, principal


def _failed(reason: str, **extra: object) -> web.Response:
    return web.json_response({"status": "failed", "reason": reason, **extra}, status=503)


async def cluster_health(request: web.Request) -> web.Response:
    cluster = cluster_of(monitor(request).broker)
    if cluster is None:
        return ok({"status": "ok", "cluster": False})
    found: Json = await cluster.health()
    overview = cluster.overview()
    found.update(
        nodes_running=overview.get("nodes_running"),
        nodes_stopped=overview.get("nodes_stopped"),
        jetstream_servers=overview.get("jetstream_servers"),
    )
    reason = found.pop("reason")
    if reason:
        return _failed(reason, **found)
    return ok({"status": "ok", "cluster": True, **found})


async def ready_to_serve_clients(request: web.Request) -> web.Response:
    cluster = cluster_of(monitor(request).broker)
    if cluster is not None:
        reason = (await cluster.health())["reason"]
        if reason:
            return _failed(f"not ready to serve clients: {reason}")
    return ok({"status": "ok"})


async def not_critical(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


async def forget_node(request: web.Request) -> web.Response:
    principal(request).require_admin()
    cluster = cluster_of(monitor(request).broker)
    name = request.match_info["node"]
    if cluster is None or not any(n["name"] == name for n in cluster.nodes({})):
        return error(404, "Object Not Found", "Not Found")
    if not await cluster.forget(name):
        return error(409, "conflict", f"node {name} is running: stop it first")
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/health/checks/cluster", cluster_health)
    r.add_get("/api/health/checks/ready-to-serve-clients", ready_to_serve_clients)
    r.add_get("/api/health/checks/node-is-quorum-critical", not_critical)
    r.add_get("/api/health/checks/node-is-mirror-sync-critical", not_critical)
    r.add_delete("/api/nodes/{node}", forget_node)
