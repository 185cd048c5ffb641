"""The management layer's view of a running broker, and the sampling loop behind rates.

One :class:`Monitor` per management server. It runs on the broker's event
loop: a task samples the counters every ``interval`` seconds (a handful of
attribute reads per queue), so serving the API and ``/metrics`` never has to
walk history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref

from pigeon.admin.client_rates import ClientSampler
from pigeon.admin.latency import LatencyRecorder
from pigeon.admin.rates import StatsSampler
from pigeon.admin.source import BrokerLike, HandlerLike
from pigeon.admin.store_probe import StoreProbe
from pigeon.auth.gate import LoginGate
from pigeon.auth.users import UserStore
from pigeon.core.node import Node
from pigeon.core.vhost import VirtualHost

DEFAULT_INTERVAL = 5.0


class BrokerNotRunning(Exception):
    """The management server was asked about a broker that has not started."""


class Monitor:
    def __init__(
        self, broker: BrokerLike, *, interval: float = DEFAULT_INTERVAL, window: float | None = None
    ) -> None:
        if broker.node is None or broker.context is None:
            raise BrokerNotRunning("start the broker before its management server")
        self.broker = broker
        self.node: Node = broker.node
        self.users: UserStore = broker.context.users
        self.logins: LoginGate | None = broker.context.logins
        self.interval = interval
        self.window = window if window is not None else 2 * interval
        self.sampler = StatsSampler(
            self.node, window=self.window, history=max(600.0, 120 * interval)
        )
        self.store_probe = StoreProbe(self.node.store)
        self.latency = LatencyRecorder()
        self.latency_attached = self.latency.attach(self.node)
        self.started_at = time.time()
        self.connected_at: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()
        self.connections_opened = 0
        # Connections' and channels' counters, kept while they are open.
        self.clients = ClientSampler(self.window * 2 + 1)
        self.http_port: int | None = None
        self._task: asyncio.Task[None] | None = None

    # -- reading -----------------------------------------------------------------

    def handlers(self) -> list[HandlerLike]:
        """Live client connections that got as far as having a handler."""
        found = []
        for connection in list(self.broker.connections):
            handler = connection.session
            if handler is not None:
                found.append(handler)
                if handler not in self.connected_at:
                    self.connected_at[handler] = time.time()
                    self.connections_opened += 1
        return found

    def now(self) -> float:
        """The loop's clock, which the samples are timed with."""
        return asyncio.get_running_loop().time()

    def vhost(self, name: str) -> VirtualHost | None:
        return self.node.vhosts.get(name)

    # -- sampling ----------------------------------------------------------------

    def tick(self) -> None:
        now = asyncio.get_running_loop().time()
        self.sampler.sample(now)
        self.store_probe.tick()
        self.clients.sample(now, self.handlers())
        live = {(v.name, q) for v in self.node.vhosts.values() for q in v.queues}
        self.latency.forget(live)

    def start(self) -> None:
        self.tick()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    async def stop(self) -> None:
        self.latency.detach(self.node)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
