"""The cluster's Pigeon nodes, from the heartbeats each one writes to a KV bucket.

Every node puts its own description (RabbitMQ's ``/api/nodes`` shape, made by the
management layer) under its name in ``pigeon-nodes`` five times per
``cluster_node_timeout`` and watches the bucket, so any node answers for all. A node
whose last heartbeat arrived longer ago than the timeout is shown ``running: false``
(a node that stops cleanly says so at once); one silent for :data:`FORGET_AFTER`
leaves the bucket (its entries expire) and the list.

Ages are measured on this node's own clock, from when a heartbeat arrived; only the
heartbeats the bucket held when the watch began are aged from the time the servers
stored them, so that a node gone before this one started is not shown running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from pigeon.cluster.definitions import encode
from pigeon.cluster.link import ClusterLink

log = logging.getLogger("pigeon.cluster")

BUCKET = "pigeon-nodes"
FORGET_AFTER = 24 * 3600.0
# What RabbitMQ shows of a node that is not running (and Pigeon's heartbeat age).
STOPPED_FIELDS = ("name", "type", "os_pid", "applications", "listeners")


def default_name(port: int) -> str:
    """``pigeon-PORT@HOSTNAME``: unique among the front-ends of one machine (a random
    tag instead of the port when it is picked at start)."""
    tag = str(port) if port else uuid.uuid4().hex[:8]
    return f"pigeon-{tag}@{socket.gethostname()}"


@dataclass
class Peer:
    record: dict[str, Any]
    instance: str
    seen: float  # time.monotonic() of the heartbeat's arrival


class Roster:
    def __init__(self, link: ClusterLink, name: str, timeout: float) -> None:
        self.link = link
        self.name = name
        self.timeout = timeout
        self.interval = max(0.05, timeout / 5)
        self.instance = uuid.uuid4().hex
        self.started = time.time()
        # Replaced by the management layer with the full node description
        # (:meth:`describe_with`).
        self.describe: Callable[[], dict[str, Any]] = self._basic
        self._wake = asyncio.Event()
        self.peers: dict[str, Peer] = {}
        self.last_beat: float | None = None  # monotonic time of the last acknowledged put
        self._kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._caught_up = False
        self._down: set[str] = set()
        self._last: dict[str, Any] = {}
        self._twins: set[str] = set()  # other instances seen under this node's name

    def describe_with(self, describe: Callable[[], dict[str, Any]]) -> None:
        """Heartbeats carry ``describe()`` from now on; the next goes out at once."""
        self.describe = describe
        self._wake.set()

    def _describe(self) -> dict[str, Any]:
        try:
            return self.describe()
        except Exception:  # a heartbeat must go out even when the description fails
            log.warning("cluster: cannot describe this node", exc_info=True)
            return self._basic()

    def _basic(self) -> dict[str, Any]:
        return {"name": self.name, "uptime": int((time.time() - self.started) * 1000)}

    async def open(self, replicas: int) -> None:
        js = self.link.jetstream
        try:
            self._kv = await js.key_value(BUCKET)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(
                bucket=BUCKET, history=1, replicas=replicas, ttl=FORGET_AFTER
            )
        watcher = await self._kv.watchall()
        # The first heartbeat goes out at once, from the loop that retries it (a bucket
        # just made may not answer until its stream has elected a leader).
        self._wake.set()
        self._tasks = [
            asyncio.create_task(self._watch(watcher), name="pigeon-cluster-roster"),
            asyncio.create_task(self._beat(), name="pigeon-cluster-heartbeat"),
        ]

    # -- out ---------------------------------------------------------------------------

    async def _put(self, *, running: bool) -> None:
        assert self._kv is not None
        # Stopping: the last description (the listeners it reads are closed by now).
        described = self._describe() if running else self._last
        self._last = described
        record = {**described, "name": self.name, "running": running}
        value = {"instance": self.instance, "sent_at": time.time(), "record": record}
        await self._kv.put(encode(self.name), json.dumps(value, default=str).encode())
        self.last_beat = time.monotonic()

    async def _beat(self) -> None:
        failing_since: float | None = None
        warned = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._put(running=True), max(1.0, self.timeout))
                if warned:
                    log.info("cluster: heartbeats acknowledged again")
                failing_since, warned = None, False
            except (nats.errors.Error, TimeoutError) as error:
                failing_since = failing_since or time.monotonic()
                # Said once the others would see this node as not running (a heartbeat
                # lost in a leader election is not worth a warning).
                if not warned and time.monotonic() - failing_since >= self.timeout:
                    log.warning("cluster: heartbeats not acknowledged: %s", error or type(error))
                    warned = True
            self._note_changes()

    def _note_changes(self) -> None:
        """Log each peer that stops or starts answering (once per change)."""
        down = {name for name, peer in self.peers.items() if not self._running(peer)}
        for name in sorted(down - self._down):
            log.warning("cluster: node %s is not running (no heartbeat)", name)
        for name in sorted(self._down - down):
            if name in self.peers:
                log.info("cluster: node %s is running", name)
        self._down = down

    # -- in ----------------------------------------------------------------------------

    async def _watch(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None:  # the end of what the bucket held when the watch began
                self._caught_up = True
                continue
            self._arrived(entry)

    def _arrived(self, entry: Any) -> None:
        if not entry.value:  # deleted (forgotten) or purged
            for name in [n for n in self.peers if encode(n) == entry.key]:
                del self.peers[name]
            return
        try:
            found = json.loads(entry.value)
            record, instance = dict(found["record"]), str(found["instance"])
            name = str(record["name"])
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: ignoring node entry %s", entry.key)
            return
        if name == self.name:
            if instance != self.instance and self._caught_up and instance not in self._twins:
                self._twins.add(instance)
                log.warning("cluster: another node is also named %s (set node_name)", name)
            return
        seen = time.monotonic()
        if not self._caught_up and isinstance(entry.created, datetime.datetime):
            now = datetime.datetime.now(datetime.UTC)
            seen -= max(0.0, (now - entry.created).total_seconds())
        self.peers[name] = Peer(record, instance, seen)

    # -- reading -----------------------------------------------------------------------

    def _running(self, peer: Peer) -> bool:
        return bool(peer.record.get("running")) and self.age(peer) < self.timeout

    def age(self, peer: Peer) -> float:
        return time.monotonic() - peer.seen

    def nodes(self, own: dict[str, Any]) -> list[dict[str, Any]]:
        """Every node RabbitMQ-style: this one as ``own`` says, the others from their
        last heartbeat; sorted by name."""
        self._forget_old()
        # This node's age is that of its last acknowledged heartbeat (0 before the first).
        mine = 0.0 if self.last_beat is None else round(time.monotonic() - self.last_beat, 3)
        found = [{**own, "name": self.name, "running": True, "heartbeat_age": mine}]
        for name, peer in self.peers.items():
            age = round(self.age(peer), 3)
            if self._running(peer):
                found.append({**peer.record, "heartbeat_age": age})
                continue
            kept = {key: peer.record[key] for key in STOPPED_FIELDS if key in peer.record}
            found.append(
                {
                    **kept,
                    "name": name,
                    "type": "disc",
                    "running": False,
                    "being_drained": False,
                    "partitions": [],
                    "heartbeat_age": age,
                }
            )
        return sorted(found, key=lambda node: str(node["name"]))

    def _forget_old(self) -> None:
        for name in [n for n, p in self.peers.items() if self.age(p) > FORGET_AFTER]:
            del self.peers[name]

    def counts(self) -> tuple[int, int]:
        """(running, not running) nodes, this one included."""
        running = 1 + sum(1 for peer in self.peers.values() if self._running(peer))
        return running, 1 + len(self.peers) - running

    async def forget(self, name: str) -> bool:
        """Drop a node that is not running from the cluster's list (False: it runs)."""
        peer = self.peers.get(name)
        if name == self.name or (peer is not None and self._running(peer)):
            return False
        assert self._kv is not None
        await self._kv.delete(encode(name))
        self.peers.pop(name, None)
        return True

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._kv is not None and self.link.client is not None:
            # Said at once, so that the others need not wait for the timeout.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self._put(running=False), 2)
