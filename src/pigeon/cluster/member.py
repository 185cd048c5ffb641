"""This node as a member of a cluster: the connection, and what it shares.

The composition root calls, in order: :meth:`ClusterMember.start` (connect and
check, before anything listens), :meth:`ClusterMember.store` (wrap the local
store), :meth:`ClusterMember.attach` (the node is built: catch up and watch),
and :meth:`ClusterMember.stop`.
"""

from __future__ import annotations

import logging
from typing import Any

from pigeon.cluster.link import ClusterLink, parse_urls
from pigeon.config import Config

log = logging.getLogger("pigeon.cluster")


class ClusterMember:
    def __init__(self, config: Config) -> None:
        assert config.cluster is not None
        monitor = config.cluster_monitor
        self.link = ClusterLink(
            parse_urls(config.cluster), parse_urls(monitor, "http") if monitor else []
        )

    async def start(self) -> None:
        await self.link.connect()

    def overview(self) -> dict[str, Any]:
        return self.link.overview()

    async def stop(self) -> None:
        await self.link.close()
