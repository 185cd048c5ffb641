"""``/api/overview``, ``/api/nodes``, ``/api/whoami`` and ``/api/health/checks/*``."""

from __future__ import annotations

import platform
import time

from aiohttp import web

from pigeon.admin import process
from pigeon.admin.monitor import Monitor
from pigeon.admin.rates import message_stats
from pigeon.admin.shapes import rate_details
from pigeon.admin.source import cluster_of
from pigeon.admin.store_probe import folder_bytes
from pigeon.admin.web import (
    Json,
    error,
    history_query,
    monitor,
    ok,
    principal,
    vhost_of,
    visible_vhosts,
)
from pigeon.version import __version__

EXCHANGE_TYPES = [
    {
        "name": "direct",
        "description": "AMQP direct exchange, as per the AMQP specification",
        "enabled": True,
    },
    {
        "name": "fanout",
        "description": "AMQP fanout exchange, as per the AMQP specification",
        "enabled": True,
    },
    {
        "name": "headers",
        "description": "AMQP headers exchange, as per the AMQP specification",
        "enabled": True,
    },
    {
        "name": "topic",
        "description": "AMQP topic exchange, as per the AMQP specification",
        "enabled": True,
    },
]
OVERVIEW_STATS = (
    "publish",
    "deliver_get",
    "ack",
    "redeliver",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
)


def _listeners(request: web.Request) -> list[Json]:
    return listeners(monitor(request))


def listeners(mon: Monitor) -> list[Json]:
    config = mon.broker.config
    rows = [
        {
            "node": mon.node.name,
            "protocol": "amqp",
            "ip_address": config.host,
            "port": mon.broker.amqp_port,
            "socket_opts": {},
        }
    ]
    port = mon.http_port
    if port is not None:
        rows.append(
            {
                "node": mon.node.name,
                "protocol": "http",
                "ip_address": config.host,
                "port": port,
                "socket_opts": {},
            }
        )
    return rows


# Overview counter -> the node total behind it, when the core keeps that total: a
# message published once counts once ("received"), however many queues it reaches
# (the queues' "publish" counts each enqueue).
_OVERVIEW_SOURCES = {
    "publish": "received",
    "confirm": "confirmed",
    "return_unroutable": "unroutable_returned",
    "drop_unroutable": "unroutable_dropped",
}


def _node_stats(request: web.Request) -> tuple[Json, dict[str, str]]:
    """Overview counters, and the key of the sampled total each one comes from."""
    totals = monitor(request).sampler.totals()
    counters = dict(totals)
    sources = {key: key for key in OVERVIEW_STATS}
    for theirs, ours in _OVERVIEW_SOURCES.items():
        if ours in totals:
            counters[theirs] = totals[ours]
            sources[theirs] = ours
    return counters, sources


async def overview(request: web.Request) -> web.Response:
    mon = monitor(request)
    who = principal(request)
    vhosts = visible_vhosts(request)
    handlers = [h for h in mon.handlers() if who.may_see_connection(h.username)]
    series = mon.sampler.overview
    now = mon.now()
    counters, sources = _node_stats(request)
    stats = message_stats(counters, series, mon.window, OVERVIEW_STATS)
    for key, source in sources.items():
        if key in stats:  # the rate (and the chart below) of the same total as the tile
            stats[f"{key}_details"]["rate"] = round(series.rate(source, mon.window), 2)
    history, rates = history_query(request, "lengths"), history_query(request, "msg_rates")
    queue_totals: Json = {}
    for key in ("messages", "messages_ready", "messages_unacknowledged"):
        queue_totals[key] = sum(
            (len(q.ready) if key != "messages_unacknowledged" else 0)
            + (q.unacked if key != "messages_ready" else 0)
            for v in vhosts
            for q in v.queues.values()
        )
        queue_totals[f"{key}_details"] = rate_details(
            series, key, mon, history, now, mon.sampler.overview_history
        )
    if rates is not None:
        for key in ("publish", "deliver_get", "ack", "redeliver"):
            if f"{key}_details" in stats:
                stats[f"{key}_details"]["samples"] = mon.sampler.overview_history.samples(
                    sources[key], rates[0], rates[1], now, series
                )
    return ok(
        {
            "management_version": __version__,
            "rates_mode": "basic",
            "exchange_types": EXCHANGE_TYPES,
            "product_version": __version__,
            "product_name": "Pigeon",
            "rabbitmq_version": __version__,
            "cluster_name": mon.node.parameters.global_values.get("cluster_name", mon.node.name),
            "erlang_version": platform.python_version(),
            "erlang_full_version": f"Python {platform.python_version()}",
            "disable_stats": False,
            "enable_queue_totals": True,
            "message_stats": stats,
            "churn_rates": {},
            "queue_totals": queue_totals,
            "object_totals": {
                "connections": len(handlers),
                "channels": sum(len(h.channels) for h in handlers),
                "consumers": sum(len(q.consumers) for v in vhosts for q in v.queues.values()),
                "exchanges": sum(len(v.exchanges) for v in vhosts),
                "queues": sum(len(v.queues) for v in vhosts),
            },
            "statistics_db_event_queue": 0,
            "node": mon.node.name,
            "listeners": _listeners(request),
            "contexts": [],
            "latency_histograms": mon.latency_attached,
            **_cluster(request),
        }
    )


def _cluster(request: web.Request) -> Json:
    """Cluster mode's NATS URLs, JetStream servers and durability (docs/cluster.md)."""
    describe = getattr(monitor(request).broker, "cluster_overview", None)
    found = describe() if describe is not None else None
    return {} if found is None else {"cluster": found}


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    return ok({"name": who.name, "tags": sorted(who.tags)})


def node_json(mon: Monitor) -> Json:
    """This node in RabbitMQ's ``/api/nodes`` shape (also what its heartbeats carry in
    cluster mode)."""
    info = process.read(mon.broker.config)
    active = alarms_of(mon)
    data_dir = mon.broker.config.data_dir
    return {
        "name": mon.node.name,
        "type": "disc",
        "running": True,
        "being_drained": False,
        "mem_used": info.resident_memory,
        "mem_limit": info.memory_limit,
        "mem_alarm": "memory" in active,
        "disk_free": info.disk_free,
        "disk_free_limit": info.disk_free_limit,
        "disk_free_alarm": "disk" in active,
        "fd_used": info.open_fds,
        "fd_total": info.max_fds,
        "sockets_used": info.open_sockets,
        "sockets_total": info.max_fds,
        "proc_used": 1,
        "proc_total": 1,
        "run_queue": 0,
        "processors": info.processors,
        "os_pid": str(info.pid),
        "uptime": int((time.time() - mon.started_at) * 1000),
        # RabbitMQ's: the data folder, null when messages live in memory only.
        "db_dir": None if data_dir is None else str(data_dir),
        # Pigeon's own: the store's bytes on disk and live client connections.
        "store_bytes": folder_bytes(data_dir),
        "connections": len(mon.handlers()),
        **mon.store_probe.summary(),
        "partitions": [],
        "exchange_types": EXCHANGE_TYPES,
        "rates_mode": "basic",
        "applications": [
            {"name": "pigeon", "description": "Pigeon message broker", "version": __version__}
        ],
        "listeners": listeners(mon),
    }


def all_nodes(mon: Monitor) -> list[Json]:
    """Every node: this one alone, or the cluster's (docs/cluster.md, "Operating")."""
    own = node_json(mon)
    cluster = cluster_of(mon.broker)
    return [own] if cluster is None else cluster.nodes(own)


async def nodes(request: web.Request) -> web.Response:
    principal(request).require_monitor()
    return ok(all_nodes(monitor(request)))


async def node(request: web.Request) -> web.Response:
    principal(request).require_monitor()
    wanted = request.match_info["node"]
    found = [n for n in all_nodes(monitor(request)) if n["name"] == wanted]
    if not found:
        return error(404, "Object Not Found", "Not Found")
    return ok(found[0])


def _healthy() -> web.Response:
    return ok({"status": "ok"})


def _alarms(request: web.Request) -> set[str]:
    return alarms_of(monitor(request))


def alarms_of(mon: Monitor) -> set[str]:
    context = mon.broker.context
    return set(context.alarms.active) if context is not None else set()


def _alarm_rows(request: web.Request, *, local: bool) -> list[Json]:
    """(node, resource) of every alarm: this node's, and in a cluster (unless
    ``local``) those the other running nodes' heartbeats report."""
    mon = monitor(request)
    rows = [{"node": mon.node.name, "resource": name} for name in sorted(_alarms(request))]
    cluster = cluster_of(mon.broker)
    if local or cluster is None:
        return rows
    for other in cluster.nodes({}):
        if other["name"] == mon.node.name or not other.get("running"):
            continue
        for flag, resource in (("mem_alarm", "memory"), ("disk_free_alarm", "disk")):
            if other.get(flag):
                rows.append({"node": other["name"], "resource": resource})
    return rows


async def alarms(request: web.Request) -> web.Response:
    return _alarm_answer(_alarm_rows(request, local=False), "in the cluster")


async def local_alarms(request: web.Request) -> web.Response:
    return _alarm_answer(_alarm_rows(request, local=True), "on this node")


def _alarm_answer(rows: list[Json], where: str) -> web.Response:
    if not rows:
        return _healthy()
    return web.json_response(
        {"status": "failed", "reason": f"resource alarm(s) in effect {where}", "alarms": rows},
        status=503,
    )


async def port_listener(request: web.Request) -> web.Response:
    try:
        port = int(request.match_info["port"])
    except ValueError:
        return error(400, "bad_request", "port must be an integer")
    ports = [int(listener["port"]) for listener in _listeners(request)]
    if port in ports:
        return ok({"status": "ok", "port": port})
    return web.json_response(
        {"status": "failed", "reason": "No active listener", "missing": port, "ports": ports},
        status=503,
    )


async def virtual_hosts(request: web.Request) -> web.Response:
    return _healthy()  # every vhost of a single node runs while the node runs


async def aliveness(request: web.Request) -> web.Response:
    vhost_of(request)
    return _healthy()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/overview", overview)
    r.add_get("/api/whoami", whoami)
    r.add_get("/api/nodes", nodes)
    r.add_get("/api/nodes/{node}", node)
    r.add_get("/api/health/checks/alarms", alarms)
    r.add_get("/api/health/checks/local-alarms", local_alarms)
    r.add_get("/api/health/checks/port-listener/{port}", port_listener)
    r.add_get("/api/health/checks/virtual-hosts", virtual_hosts)
    r.add_get("/api/aliveness-test/{vhost}", aliveness)
