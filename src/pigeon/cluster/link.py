"""A node's connection to the JetStream cluster: checked at start (reachable, 2.11 or
newer, JetStream enabled), with the durability mode read where the servers say it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from pigeon.cluster.natsserver import check_version, monitor
from pigeon.config import ConfigError

log = logging.getLogger("pigeon.cluster")

ALWAYS_SYNC, FAST, UNKNOWN = "always-sync", "fast", "unknown"
# A server that stops answering (a partition, a hung or stopped process) keeps its TCP
# connection open: only unanswered PINGs tell. nats-py's default (a PING every two
# minutes, stale after two unanswered) left a node stuck on such a server for minutes,
# every confirm and delivery with it; this way it moves to another server after 3-4 s.
PING_INTERVAL = 1  # seconds
MAX_OUTSTANDING_PINGS = 3


class ClusterError(ConfigError):
    """The cluster cannot be used: unreachable, too old, or without JetStream."""


async def _error(error: Exception) -> None:
    log.warning("cluster: NATS connection: %s", error or type(error).__name__)


async def _disconnected() -> None:
    log.info("cluster: disconnected from NATS")


async def _reconnected() -> None:
    log.info("cluster: reconnected to NATS")


def parse_urls(text: str, scheme: str = "nats") -> list[str]:
    """``nats://HOST:PORT[,nats://...]`` as a list, each checked."""
    urls = [part.strip() for part in text.split(",") if part.strip()]
    if not urls:
        raise ClusterError(f"cluster: no {scheme}:// URL in {text!r}")
    for url in urls:
        parts = urlsplit(url)
        schemes = ("http", "https") if scheme == "http" else ("nats", "tls")
        if parts.scheme not in schemes or not parts.hostname:
            raise ClusterError(f"cluster: {url!r} is not a {scheme}://HOST:PORT URL")
    return urls


@dataclass
class ClusterLink:
    """One nats-py connection (and its JetStream context) for this node."""

    urls: list[str]
    monitor_urls: list[str] = field(default_factory=list)
    connect_timeout: int = 5
    client: Client | None = None
    durability: str = UNKNOWN
    durability_source: str = ""
    servers: list[str] = field(default_factory=list)
    version: str = ""

    @property
    def jetstream(self) -> JetStreamContext:
        assert self.client is not None, "connect first"
        return self.client.jetstream()

    async def connect(self) -> None:
        client = Client()
        try:
            # With reconnects allowed nats-py retries a failed first connect for ever:
            # the deadline makes an unreachable cluster a start-up error.
            await asyncio.wait_for(
                client.connect(
                    servers=self.urls,
                    connect_timeout=self.connect_timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    ping_interval=PING_INTERVAL,
                    max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                    name="pigeon",
                    error_cb=_error,
                    disconnected_cb=_disconnected,
                    reconnected_cb=_reconnected,
                ),
                2 * self.connect_timeout,
            )
        except (OSError, TimeoutError, nats.errors.Error) as error:
            await client.close()  # its own tasks end with it
            raise ClusterError(
                f"cannot reach the NATS servers {', '.join(self.urls)}: {error or type(error)}"
            ) from None
        self.client = client
        try:
            await self._check()
        except BaseException:
            await self.close()
            raise
        await self._read_durability()
        log.info(
            "cluster: connected to %s (nats-server %s), JetStream servers %s, durability %s%s",
            self.client.connected_url.netloc if self.client.connected_url else "?",
            self.version,
            ", ".join(self.servers) or "unknown",
            self.durability,
            f" ({self.durability_source})" if self.durability_source else "",
        )

    async def _check(self) -> None:
        assert self.client is not None
        server = self.client.connected_server_version
        self.version = f"{server.major}.{server.minor}.{server.patch}"
        try:
            check_version((server.major, server.minor, server.patch), "the NATS server")
        except ConfigError as old:
            raise ClusterError(old.text) from None
        try:
            await self.jetstream.account_info()
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            raise ClusterError(
                "JetStream is not enabled on the NATS servers "
                f"{', '.join(self.urls)} (add a jetstream {{}} block to their configuration)"
            ) from None
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
            raise ClusterError(f"JetStream does not answer: {error or type(error)}") from None
        found = [self.client.connected_url, *self.client.discovered_servers]
        self.servers = [url.netloc for url in found if url is not None]

    async def _read_durability(self) -> None:
        """From each server's ``/varz`` (``jetstream.config.sync_always``) when the
        monitoring URLs are known; otherwise the mode is unknown and the log says why."""
        if not self.monitor_urls:
            self.durability, self.durability_source = (
                UNKNOWN,
                "no cluster_monitor URLs given: the servers' sync_interval cannot be read",
            )
            return
        varz = await asyncio.gather(
            *(asyncio.to_thread(monitor, url, "varz") for url in self.monitor_urls)
        )
        modes, names = set(), []
        for url, data in zip(self.monitor_urls, varz, strict=True):
            if data is None:
                modes.add(UNKNOWN)
                log.warning("cluster: %s/varz does not answer", url)
                continue
            config = (data.get("jetstream") or {}).get("config") or {}
            modes.add(ALWAYS_SYNC if config.get("sync_always") else FAST)
            names.append(str(data.get("server_name", url)))
        # The weakest server decides what a confirm can promise.
        self.durability = FAST if FAST in modes else UNKNOWN if UNKNOWN in modes else ALWAYS_SYNC
        self.durability_source = "from the servers' /varz"
        self.servers = sorted(names)

    def overview(self) -> dict[str, Any]:
        return {
            "nats_urls": list(self.urls),
            "connected": bool(self.client is not None and self.client.is_connected),
            "nats_server_version": self.version,
            "jetstream_servers": list(self.servers),
            "durability": self.durability,
        }

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None or client.is_closed:
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(client.drain(), 5)
                return
        except (nats.errors.Error, TimeoutError):
            pass
        # Not connected (NATS down, reconnecting) or the drain failed: nothing to flush.
        with contextlib.suppress(OSError, nats.errors.Error):
            await client.close()
