"""Whether this node can use the JetStream cluster now: connected to NATS, and
JetStream answering (which it does only while it has a meta leader).

The meta leader's name comes from a server's ``/jsz`` when monitoring URLs are
given; the client protocol does not tell it. Without them, a JetStream that answers
its API is one with a meta leader (without one, the servers answer 503 "JetStream
system temporarily unavailable" or not at all).
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import nats.js.errors

from pigeon.cluster.link import ClusterLink
from pigeon.cluster.natsserver import monitor

PROBE_TIMEOUT = 2.0


async def probe(link: ClusterLink) -> dict[str, Any]:
    """``{"connected", "jetstream", "meta_leader", "servers_answering", "reason"}``;
    ``reason`` is empty when the cluster is usable."""
    client = link.client
    connected = bool(client is not None and client.is_connected)
    found: dict[str, Any] = {
        "connected": connected,
        "connected_server": _server(link),
        "jetstream": False,
        "meta_leader": None,
        "reason": "",
    }
    if not connected:
        found["reason"] = "not connected to any NATS server"
        found["servers_answering"] = await _answering(link)
        return found
    try:
        await asyncio.wait_for(link.jetstream.account_info(), PROBE_TIMEOUT)
        found["jetstream"] = True
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
        found["reason"] = f"JetStream does not answer (no meta leader?): {error or type(error)}"
    found["meta_leader"] = await _meta_leader(link)
    if found["jetstream"] and link.monitor_urls and found["meta_leader"] is None:
        found["reason"] = "no JetStream meta leader"
    found["servers_answering"] = await _answering(link)
    return found


async def _answering(link: ClusterLink) -> int:
    """JetStream servers up now: those whose ``/healthz?js-enabled-only=true`` says
    ok, when their monitoring URLs are known; else the servers the client knows of."""
    if not link.monitor_urls:
        return len(link.servers)
    checks = await asyncio.gather(
        *(
            asyncio.to_thread(monitor, url, "healthz?js-enabled-only=true", PROBE_TIMEOUT)
            for url in link.monitor_urls
        )
    )
    return sum(1 for data in checks if data is not None and data.get("status") == "ok")


def _server(link: ClusterLink) -> str | None:
    client = link.client
    url = client.connected_url if client is not None else None
    return url.netloc if url is not None else None


async def _meta_leader(link: ClusterLink) -> str | None:
    """The leader named by the first server whose ``/jsz`` answers."""
    for url in link.monitor_urls:
        data = await asyncio.to_thread(monitor, url, "jsz", PROBE_TIMEOUT)
        if data is None:
            continue
        if not data.get("meta_cluster"):  # a single server, not clustered: it decides
            varz = await asyncio.to_thread(monitor, url, "varz", PROBE_TIMEOUT)
            return str((varz or {}).get("server_name") or url)
        leader = data["meta_cluster"].get("leader")
        return str(leader) if leader else None
    return None
