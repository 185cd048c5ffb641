"""One failover run: the cluster, the clients, the faults in turn, the drain, and the
checker's verdict (docs/cluster.md, "Failover, measured").

:class:`FailoverRun` owns three nats-server processes and two Pigeon nodes, starts
publishers and consumers spread over both nodes, injects faults while they work
(each followed by a wait until every client is served again), then stops the
publishers, lets the consumers empty the queues, and hands the history to
:func:`~tests.cluster.jepsen.check`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika

from pigeon.cluster.natsserver import LocalCluster
from pigeon.cluster.streams import StreamNames

from .failover_clients import Consumer, Publisher
from .failover_rig import NatsServers, PigeonNode, RigFailed
from .jepsen import CONFIRMED, Failover, Fault, History, Report, check, failover_times

ACK_WAIT = 4  # seconds (cluster_ack_wait): a dead node's unacked messages come back
RECOVERY_TIMEOUT = 30.0  # after a fault, until every client is served again
CATCH_UP_TIMEOUT = 30.0  # a restarted nats-server, until it is current again
# Queue -> the home node (0, 1) of each publisher: the first queue is the busiest.
PUBLISHERS = {"orders": (0, 1), "audit": (0,), "mail": (1,)}
RATE = 40.0  # messages a second, per publisher


@dataclass
class FailoverRun:
    directory: Path
    binary: Path
    history: History = field(default_factory=History)
    nodes: list[PigeonNode] = field(default_factory=list)
    nats: LocalCluster | None = None
    publishers: list[Publisher] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    _stop_publishing: asyncio.Event = field(default_factory=asyncio.Event)
    _stop_consuming: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _servers: NatsServers | None = None

    # -- set-up and tear-down ----------------------------------------------------------

    async def start(self) -> None:
        self.nats = LocalCluster(self.directory / "nats", size=3, binary=self.binary)
        self._servers = NatsServers(self.nats)
        await asyncio.to_thread(self.nats.start)
        env = {"PIGEON_CLUSTER_ACK_WAIT": str(ACK_WAIT)}
        self.nodes = [
            PigeonNode(name, self.directory / name, self.nats, env) for name in ("a", "b")
        ]
        for node in self.nodes:  # one after the other, as ``pigeon cluster up`` starts them
            await asyncio.to_thread(node.start)
        await self._declare()

    @property
    def servers(self) -> NatsServers:
        assert self._servers is not None, "start first"
        return self._servers

    @property
    def streams(self) -> list[str]:
        return [StreamNames.of("/", queue).stream for queue in PUBLISHERS]

    async def _declare(self) -> None:
        """Every queue, declared on node a, seen by node b."""
        connection = await aio_pika.connect(self.nodes[0].url)
        async with connection:
            channel = await connection.channel()
            for queue in PUBLISHERS:
                await channel.declare_queue(queue, durable=True)
        connection = await aio_pika.connect(self.nodes[1].url)
        async with connection:
            for queue in PUBLISHERS:
                await _until(functools.partial(_exists, connection, queue), 10.0, f"{queue} on b")

    def stop(self) -> None:
        """Kill what is left (synchronous: a fixture's finaliser)."""
        for node in self.nodes:
            node.kill()
        if self._servers is not None:
            for index in list(self._servers.stopped):
                self._servers.resume(index)
        if self.nats is not None:
            self.nats.stop()

    # -- clients -----------------------------------------------------------------------

    def start_clients(self) -> None:
        for queue, homes in PUBLISHERS.items():
            for number, home in enumerate(homes):
                name = f"p-{queue}-{number}"
                self.publishers.append(
                    Publisher(name, queue, home, self.nodes, self.history, rate=RATE)
                )
            for home in range(len(self.nodes)):
                name = f"c-{queue}-{self.nodes[home].name}"
                self.consumers.append(Consumer(name, queue, home, self.nodes, self.history))
        for publisher in self.publishers:
            self._tasks.append(asyncio.create_task(publisher.run(self._stop_publishing)))
        for consumer in self.consumers:
            self._tasks.append(asyncio.create_task(consumer.run(self._stop_consuming)))

    async def warm_up(self, deliveries: int = 30) -> None:
        """Until every queue had ``deliveries`` deliveries."""

        def warm() -> bool:
            counts = {queue: 0 for queue in PUBLISHERS}
            for delivery in self.history.deliveries:
                counts[delivery.queue] += 1
            return min(counts.values()) >= deliveries

        await _until(warm, 30.0, "deliveries on every queue")

    # -- faults ------------------------------------------------------------------------

    def fault(self, kind: str, name: str, queue: str | None = None) -> Fault:
        fault = Fault(kind, name, time.monotonic(), queue)
        self.history.faults.append(fault)
        return fault

    async def recovered(self, fault: Fault) -> Failover:
        """Until every publisher that published since ``fault`` had a confirm of such
        a publish, and every queue a delivery of one: the clients are served again."""

        def measured() -> Failover:
            return failover_times(self.history, time.monotonic())[-1]

        def served() -> bool:
            found = measured()
            return found.last_confirm is not None and found.last_delivery is not None

        try:
            await _until(served, RECOVERY_TIMEOUT, f"service after {fault.name}", 0.1)
        except RigFailed as failed:
            raise RigFailed(f"{failed}\n{measured().line()}\n{self.clients_state()}") from None
        self.log.append(measured().line())
        return measured()

    def clients_state(self) -> str:
        """Where each client is and what it saw last (for a failure's message)."""
        now = time.monotonic()
        last_sent: dict[str, float] = {}
        last_confirm: dict[str, float] = {}
        for p in self.history.publishes.values():
            last_sent[p.publisher] = max(last_sent.get(p.publisher, 0.0), p.sent)
            if p.outcome == CONFIRMED and p.settled is not None:
                last_confirm[p.publisher] = max(last_confirm.get(p.publisher, 0.0), p.settled)
        last_delivery: dict[str, float] = {}
        for d in self.history.deliveries:
            last_delivery[d.consumer] = max(last_delivery.get(d.consumer, 0.0), d.at)
        lines = []
        for client in [*self.publishers, *self.consumers]:
            node = client.node.name if client.node else "-"
            sent = now - last_sent.get(client.name, now)
            confirmed = now - last_confirm.get(client.name, now)
            delivered = now - last_delivery.get(client.name, now)
            lines.append(
                f"  {client.name} on {node}: sent {sent:.1f} s ago, confirm {confirmed:.1f} "
                f"s ago, delivery {delivered:.1f} s ago"
            )
        return "\n".join(lines)

    async def kill_nats_server(self, label: str = "") -> int:
        """SIGKILL a server that is not the meta leader (the one leading most of our
        streams, if any); returns its index."""
        servers = self.servers
        meta = await asyncio.to_thread(servers.meta_leader)
        leaders = [
            (detail.get("cluster") or {}).get("leader")
            for name, detail in (await asyncio.to_thread(servers.streams)).items()
            if name in self.streams
        ]
        candidates = [name for name in servers.names() if name != meta]
        victim = max(candidates, key=leaders.count)
        index = servers.index(victim)
        self.fault("kill -9 a nats-server", f"kill -9 {victim} (not the meta leader){label}")
        servers.kill(index)
        return index

    async def restart_nats_server(self, index: int) -> None:
        servers = self.servers
        servers.restart(index)
        await self.caught_up()

    def busiest(self) -> tuple[str, str]:
        """The queue whose stream stored the most messages, and its stream's leader."""
        details = self.servers.streams()
        queue = max(
            PUBLISHERS,
            key=lambda q: int(
                (details[StreamNames.of("/", q).stream].get("state") or {}).get("last_seq", 0)
            ),
        )
        leader = (details[StreamNames.of("/", queue).stream].get("cluster") or {}).get("leader")
        if not leader:
            raise RigFailed(f"the stream of {queue} has no leader")
        return queue, str(leader)

    async def kill_stream_leader(self, label: str = "") -> int:
        queue, leader = await asyncio.to_thread(self.busiest)
        index = self.servers.index(leader)
        self.fault(
            "kill -9 the busiest stream's leader",
            f"kill -9 {leader}, leader of the busiest queue ({queue}){label}",
            queue,
        )
        self.servers.kill(index)
        return index

    async def kill_consumer_leader(self, label: str = "") -> int:
        """SIGKILL the server that leads the busiest queue's consumer (which holds the
        delivery counts the redelivered flag comes from)."""
        queue, _ = await asyncio.to_thread(self.busiest)
        stream = StreamNames.of("/", queue).stream
        leader = await asyncio.to_thread(self.servers.consumer_leader, stream)
        if not leader:
            raise RigFailed(f"the consumer of {queue} has no leader")
        index = self.servers.index(leader)
        self.fault(
            "kill -9 the busiest consumer's leader",
            f"kill -9 {leader}, leader of the consumer of the busiest queue ({queue}){label}",
            queue,
        )
        self.servers.kill(index)
        return index

    async def pause_stream_leader(self, label: str = "") -> int:
        """SIGSTOP the busiest queue's stream leader: a partition (it holds its sockets
        and answers nothing) until :meth:`NatsServers.resume`."""
        queue, leader = await asyncio.to_thread(self.busiest)
        index = self.servers.index(leader)
        self.fault(
            "SIGSTOP the busiest stream's leader",
            f"SIGSTOP {leader}, leader of the busiest queue ({queue}){label}",
            queue,
        )
        self.servers.pause(index)
        return index

    async def caught_up(self) -> None:
        await asyncio.to_thread(self.servers.wait_current, self.streams, CATCH_UP_TIMEOUT)

    async def kill_node(self, index: int, label: str = "") -> None:
        node = self.nodes[index]
        self.fault("kill -9 a Pigeon node", f"kill -9 Pigeon node {node.name}{label}")
        node.kill()

    async def restart_node(self, index: int) -> None:
        await asyncio.to_thread(self.nodes[index].start)

    # -- the end -----------------------------------------------------------------------

    async def drain(self, timeout: float = 60.0) -> None:
        """Publishers stop (their publishes in flight settle); consumers go on until
        every confirmed message was delivered and every stream is empty."""
        self._stop_publishing.set()
        publishing = self._tasks[: len(self.publishers)]
        await asyncio.wait_for(asyncio.gather(*publishing), timeout)
        confirmed = {i for i, p in self.history.publishes.items() if p.outcome == CONFIRMED}

        async def drained() -> bool:
            delivered = {d.id for d in self.history.deliveries}
            if not confirmed <= delivered:
                return False
            details = await asyncio.to_thread(self.servers.streams)
            return all(
                int((details[s].get("state") or {}).get("messages", -1)) == 0 for s in self.streams
            )

        try:
            await _until(drained, timeout, "the queues drained", 0.2)
        finally:
            self._stop_consuming.set()
            await asyncio.wait_for(asyncio.gather(*self._tasks[len(self.publishers) :]), 30)

    def verdict(self) -> tuple[Report, list[Failover]]:
        return check(self.history), failover_times(self.history, time.monotonic())

    def node_errors(self) -> list[str]:
        return [f"{node.name}: {line}" for node in self.nodes for line in node.errors()]


async def _exists(connection: aio_pika.abc.AbstractConnection, queue: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(queue, passive=True)
        return True
    except aio_pika.exceptions.ChannelClosed:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


async def _until(
    condition: Callable[[], object], timeout: float, what: str, every: float = 0.05
) -> None:
    """Poll ``condition`` (a function, or one returning an awaitable) until true."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise RigFailed(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(every)
