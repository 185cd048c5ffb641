"""This node as a member of a cluster: the connection, and what it shares.

The composition root calls, in order: :meth:`ClusterMember.start` (connect and
check, before anything listens), :meth:`ClusterMember.wrap` (the local store, so
that definitions also go to the bucket), :meth:`ClusterMember.prepare` (the node is
made: its durable queues will be streams), :meth:`ClusterMember.attach` (the node and
its users are built: catch up with the bucket and watch it), and
:meth:`ClusterMember.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from pigeon import accounts
from pigeon.auth.users import UserStore
from pigeon.cluster.confirms import ConfirmingStore
from pigeon.cluster.health import probe
from pigeon.cluster.link import ALWAYS_SYNC, ClusterLink, parse_urls
from pigeon.cluster.natsserver import CLUSTER_NAME
from pigeon.cluster.queues import ClusterQueues, QueueSettings
from pigeon.cluster.roster import Roster, default_name
from pigeon.cluster.sharing import Sharing
from pigeon.cluster.store import ClusterStore
from pigeon.config import Config
from pigeon.core import replay
from pigeon.core.commands import (
    Command,
    DeclareExchange,
    DeclareQueue,
    DeleteExchange,
    DeleteQueue,
    SaveDocument,
)
from pigeon.core.node import Node
from pigeon.core.ports import Snapshot, Store

log = logging.getLogger("pigeon.cluster")


class ClusterMember:
    def __init__(self, config: Config) -> None:
        assert config.cluster is not None
        monitor = config.cluster_monitor
        self.link = ClusterLink(
            parse_urls(config.cluster), parse_urls(monitor, "http") if monitor else []
        )
        self.sharing = Sharing(self.link, self._remote, self._conflict)
        self.node_name = config.node_name or default_name(config.port)
        self.roster = Roster(self.link, self.node_name, config.cluster_node_timeout)
        self.last_health: dict[str, Any] = {}
        self._health_task: asyncio.Task[None] | None = None
        self.store: ClusterStore | None = None
        self.node: Node | None = None
        self.users: UserStore | None = None
        self.queues: ClusterQueues
        self.queue_settings = QueueSettings(ack_wait=config.cluster_ack_wait)

    async def start(self) -> None:
        await self.link.connect()
        assert self.link.client is not None
        # Durable queues in JetStream streams, on the same connection (docs/cluster.md,
        # "Queues").
        self.queues = ClusterQueues(self.link.client, self.queue_settings, owns_connection=False)
        await self.queues.start()

    def wrap(self, local: Store) -> Store:
        """The node's store: definitions also go to the bucket, and write positions
        count the bucket's and the streams' acknowledgements (confirms wait for all)."""
        self.store = ClusterStore(local, self.sharing)
        return cast("Store", ConfirmingStore(self.store, self.queues.ledger))

    def prepare(self, node: Node) -> None:
        """Right after the node is made, before any queue is: durable queues are streams."""
        node.queue_factory = self.queues

    async def attach(self, node: Node, users: UserStore) -> None:
        """Apply every definition the bucket holds, then keep watching it."""
        self.node, self.users = node, users
        # One cluster name for every node (RabbitMQ's is the cluster's, not a node's),
        # unless one was set; a name set on any node reaches the others with the bucket.
        if node.parameters.global_values.get("cluster_name") == node.name:
            node.parameters.global_values["cluster_name"] = CLUSTER_NAME
        replicas = min(3, max(1, len(self.link.servers)))
        await self.sharing.open(replicas)
        log.info("cluster: definitions shared through the KV bucket (R%d)", replicas)
        await self.roster.open(replicas)
        log.info("cluster: this node is %s", self.node_name)
        self._health_task = asyncio.create_task(
            self._watch_health(self.roster.timeout), name="pigeon-cluster-health"
        )

    def _remote(self, command: Command) -> None:
        """Another node's change: made here, kept in the local copy, not written back."""
        assert self.node is not None and self.store is not None
        try:
            replay.apply(self.node, command)
            self.store.inner.apply(command)
            if isinstance(command, SaveDocument) and command.kind == accounts.KIND:
                self._replace_users(command)
        except Exception:  # one bad entry must not stop the watch
            log.warning("cluster: cannot apply %s", command, exc_info=True)

    def _replace_users(self, command: SaveDocument) -> None:
        if self.users is None:
            return
        snapshot = Snapshot(documents={command.kind: {command.key: command.value}})
        fresh = accounts.restore(snapshot, rabbit_compatible=self.users.rabbit_compatible)
        if fresh is not None:
            # Assigned, not set through UserStore's methods: those would save (and so
            # share) the document again.
            self.users.users = fresh.users
            self.users.permissions = fresh.permissions
            self.users.topic_permissions = fresh.topic_permissions

    def _conflict(self, mine: Command, theirs: Command) -> None:
        """This node lost a create race: its copy becomes the winner's definition."""
        if isinstance(mine, DeclareQueue):
            self._remote(DeleteQueue(mine.record.vhost, mine.record.name))
        elif isinstance(mine, DeclareExchange):
            self._remote(DeleteExchange(mine.record.vhost, mine.record.name))
        self._remote(theirs)

    def overview(self) -> dict[str, Any]:
        running, stopped = self.roster.counts()
        return {**self.link.overview(), "nodes_running": running, "nodes_stopped": stopped}

    # -- what the management layer reads (pigeon.admin.source.ClusterLike) -------------

    def describe_with(self, describe: Callable[[], dict[str, Any]]) -> None:
        """What this node's heartbeats say of it (the management layer's node JSON)."""
        self.roster.describe_with(describe)

    def nodes(self, own: dict[str, Any]) -> list[dict[str, Any]]:
        return self.roster.nodes(own)

    async def health(self) -> dict[str, Any]:
        self.last_health = {**await probe(self.link), "durability": self.link.durability}
        return self.last_health

    async def _watch_health(self, every: float) -> None:
        """Probe now and then, so that ``/metrics`` (read synchronously) is current."""
        while True:
            try:
                await self.health()
            except Exception:  # the next probe may do better; the task must go on
                log.warning("cluster: health probe failed", exc_info=True)
            await asyncio.sleep(every)

    async def forget(self, name: str) -> bool:
        return await self.roster.forget(name)

    def gauges(self) -> dict[str, float]:
        """``pigeon_cluster_*`` values for ``/metrics`` (read when scraped)."""
        running, stopped = self.roster.counts()
        beat, health = self.roster.last_beat, self.last_health
        client = self.link.client
        return {
            "connected": float(client is not None and client.is_connected),
            "jetstream_servers": float(health.get("servers_answering", len(self.link.servers))),
            "jetstream_available": float(bool(health) and not health.get("reason")),
            "kv_watch_lag_seconds": self.sharing.watch_lag,
            "kv_watch_pending": float(self.sharing.watch_pending),
            "definitions_unacknowledged": float(self.sharing.queued - self.sharing.acknowledged),
            "nodes_running": float(running),
            "nodes_stopped": float(stopped),
            "heartbeat_age_seconds": -1.0 if beat is None else time.monotonic() - beat,
            "always_sync": float(self.link.durability == ALWAYS_SYNC),
        }

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self.roster.close()
        await self.queues.close()  # (leased messages back at once)
        await self.sharing.close()
        await self.link.close()
