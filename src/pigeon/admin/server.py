"""The management listener: HTTP API, ``/metrics`` and the web UI, on the broker's loop.

aiohttp's server runs inside the broker's own asyncio loop (no thread, no
second process), so handlers read and change core state on the loop's thread
like any protocol does, and the core needs no locks.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from ssl import SSLContext

from aiohttp import web

from pigeon.admin import (
    api_clients,
    api_cluster,
    api_limits,
    api_messages,
    api_move,
    api_mqtt,
    api_policies,
    api_system,
    api_topology,
    api_users,
    definitions,
    metrics,
    metrics_detailed,
)
from pigeon.admin.api_system import node_json
from pigeon.admin.monitor import DEFAULT_INTERVAL, Monitor
from pigeon.admin.source import BrokerLike, cluster_of
from pigeon.admin.web import MONITOR, guard, on_disk

log = logging.getLogger("pigeon.admin")

# Request bodies are capped: RabbitMQ's default for its management listener is 20 MiB,
# large enough for the definitions of a big installation.
MAX_BODY_SIZE = 20 * 1024 * 1024
STATIC = resources.files("pigeon.admin") / "static"


class ManagementServer:
    """A bound management listener; ``port`` is the real one when 0 was asked for."""

    def __init__(self, runner: web.AppRunner, monitor: Monitor, port: int) -> None:
        self._runner = runner
        self.monitor = monitor
        self.port = port

    async def close(self) -> None:
        await self.monitor.stop()
        await self._runner.cleanup()


async def _metrics(request: web.Request) -> web.Response:
    per_object = request.path.endswith("/per-object")
    data = metrics.exposition(request.app[MONITOR], per_object=per_object)
    return web.Response(body=data, headers={"Content-Type": metrics.CONTENT_TYPE})


async def _detailed(request: web.Request) -> web.Response:
    query = request.query
    data = metrics_detailed.exposition(
        request.app[MONITOR], set(query.getall("family", [])), set(query.getall("vhost", []))
    )
    return web.Response(body=data, headers={"Content-Type": metrics.CONTENT_TYPE})


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_static_dir() / "index.html")


def _static_dir() -> Path:
    return Path(str(STATIC))


def build_app(monitor: Monitor, *, max_body_size: int = MAX_BODY_SIZE) -> web.Application:
    app = web.Application(middlewares=[guard, on_disk], client_max_size=max_body_size)
    app[MONITOR] = monitor
    for module in (
        api_system,
        api_cluster,
        api_users,
        api_topology,
        api_messages,
        api_move,
        api_clients,
        api_mqtt,
        api_policies,
        api_limits,
        definitions,
    ):
        module.add_routes(app)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/metrics/per-object", _metrics)
    app.router.add_get("/metrics/detailed", _detailed)
    app.router.add_get("/", _index)
    app.router.add_static("/static", _static_dir())
    return app


async def start_management(
    broker: BrokerLike,
    host: str,
    port: int,
    *,
    sample_interval: float = DEFAULT_INTERVAL,
    rate_window: float | None = None,
    max_body_size: int = MAX_BODY_SIZE,
    ssl: SSLContext | None = None,
) -> ManagementServer:
    """Serve the management API for a started broker on ``host:port`` (0 = a free port)."""
    monitor = Monitor(broker, interval=sample_interval, window=rate_window)
    app = build_app(monitor, max_body_size=max_body_size)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    monitor.http_port = bound
    monitor.start()
    if (cluster := cluster_of(broker)) is not None:  # heartbeats carry the node's JSON
        cluster.describe_with(lambda: node_json(monitor))
    log.info(
        "management API, metrics and UI on %s://%s:%d/",
        "http" if ssl is None else "https",
        host,
        bound,
    )
    return ManagementServer(runner, monitor, bound)
