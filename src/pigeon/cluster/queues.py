"""Durable queues in NATS JetStream, shared by every Pigeon front-end (cluster mode).

:class:`ClusterQueues` is the node's :class:`~pigeon.core.queue_types.QueueFactory`:
durable queues that are neither exclusive nor auto-delete become
:class:`~pigeon.cluster.stream_queue.StreamQueue` objects, one JetStream stream and one
shared durable pull consumer each (``streams.py``); the others stay in this process.
It owns the NATS connection, the :class:`~pigeon.cluster.confirms.PubAckLedger` that
publisher confirms wait on, and the writer that sends publishes, acks and naks.

What a stream cannot do is refused at declare with 406 PRECONDITION_FAILED naming the
feature and "cluster mode" (docs/cluster.md, "Queues"), never accepted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pigeon.cluster.confirms import ConfirmingStore, PubAckLedger
from pigeon.cluster.publisher import RETRY_AFTER, StreamPublisher
from pigeon.cluster.streams import CANNOT_PLACE, STREAM_EXISTS
from pigeon.core.options import QueueOptions
from pigeon.errors import PreconditionFailed

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js.client import JetStreamContext

    from pigeon.cluster.stream_queue import StreamQueue
    from pigeon.core.node import Node
    from pigeon.core.ports import Store
    from pigeon.core.queue import Queue

log = logging.getLogger(__name__)

API_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """``replicas``: copies of each stream (None: 3 when JetStream can place three, else
    1); ``ack_wait``: seconds after which the messages a dead
    front-end held come back; ``batch``: most messages one pull asks for."""

    replicas: int | None = None
    ack_wait: float = 30.0
    batch: int = 256
    retry_after: float = RETRY_AFTER


# What a JetStream-backed queue cannot honour yet, and how the client's 406 names it.
_GAPS: tuple[tuple[Callable[[QueueOptions], object], str], ...] = (
    (lambda o: o.max_priority, "priorities (x-max-priority)"),
    (lambda o: o.max_length is not None, "length limits (x-max-length)"),
    (lambda o: o.max_length_bytes is not None, "length limits (x-max-length-bytes)"),
    (lambda o: o.single_active_consumer, "single active consumer (x-single-active-consumer)"),
)


def refuse_gaps(options: QueueOptions) -> None:
    """Raise PreconditionFailed (406) for the first option a stream cannot honour."""
    for present, feature in _GAPS:
        if present(options):
            raise PreconditionFailed(f"{feature} not supported for durable queues in cluster mode")


class ClusterQueues:
    """Durable queues of this front-end, kept in JetStream."""

    def __init__(
        self, nc: NATS, settings: QueueSettings | None = None, *, owns_connection: bool = True
    ) -> None:
        """``owns_connection``: :meth:`close` closes ``nc`` too (False: it is shared)."""
        self.nc = nc
        self.owns_connection = owns_connection
        self.settings = settings or QueueSettings()
        self.js: JetStreamContext = nc.jetstream()
        self.ledger = PubAckLedger()
        self.publisher = StreamPublisher(nc, self.ledger, self.settings.retry_after)
        # Copies of each new stream: as set, else three, or one where JetStream says it
        # cannot place three (see create_stream).
        self.replicas = self.settings.replicas or 3
        self.queues: set[StreamQueue] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_write: dict[str, asyncio.Task[None]] = {}

    @classmethod
    async def connect(
        cls, servers: list[str], settings: QueueSettings | None = None
    ) -> ClusterQueues:
        import nats

        from pigeon.cluster.link import MAX_OUTSTANDING_PINGS, PING_INTERVAL

        async def failed(error: Exception) -> None:
            # (Reconnecting is normal in a cluster: one line, not nats-py's traceback.)
            log.warning("NATS connection: %s", error or type(error).__name__)

        nc = await nats.connect(
            servers,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            ping_interval=PING_INTERVAL,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            name="pigeon",
            error_cb=failed,
        )
        queues = cls(nc, settings)
        await queues.start()
        return queues

    async def start(self) -> None:
        await self.publisher.start()

    async def create_stream(self, config: dict[str, Any]) -> dict[str, Any]:
        """Create a stream (or find it made). Without a replica count set, three are
        asked for and one taken when JetStream cannot place three: a single server, or
        fewer than three in the cluster. (Asking JetStream, not counting the servers a
        client heard of, which lags just after a connect.)"""
        subject = f"$JS.API.STREAM.CREATE.{config['name']}"
        answer = await self.api(subject, config, ok_errors=STREAM_EXISTS + CANNOT_PLACE)
        code = (answer.get("error") or {}).get("err_code")
        if code in CANNOT_PLACE and self.settings.replicas is None:
            single = {**config, "num_replicas": 1}
            answer = await self.api(subject, single, ok_errors=STREAM_EXISTS)
        elif code in CANNOT_PLACE:
            raise RuntimeError(f"{subject}: {answer['error'].get('description')}")
        return answer

    async def close(self) -> None:
        """Leave (a front-end stopping): every message leased here goes back at once;
        call it after the client connections are closed."""
        for queue in list(self.queues):
            queue.puller.stop()
            queue.give_back_all()
        for task in list(self._tasks):
            task.cancel()
        await self.publisher.close()
        if self.owns_connection:
            with contextlib.suppress(Exception):
                await self.nc.close()

    def attach(self, node: Node) -> None:
        """Make ``node`` keep its durable queues here: new ones (in every vhost, those
        made later too) become streams, and its confirms and replies wait for
        JetStream as well as for its local store."""
        if node.store is None:
            raise ValueError("a cluster node needs a local store (memory is fine)")
        node.queue_factory = self
        for vhost in node.vhosts.values():
            vhost.queue_factory = self
        # (A Store by delegation: what it does not answer itself is the local store's.)
        node.store = cast("Store", ConfirmingStore(node.store, self.ledger))

    # -- QueueFactory ------------------------------------------------------------------

    def __call__(
        self, options: QueueOptions, *, durable: bool, exclusive: bool, auto_delete: bool
    ) -> Callable[..., Queue] | None:
        if not durable or exclusive or auto_delete:
            return None  # kept in this process (docs/cluster.md, "Queues")
        refuse_gaps(options)
        from pigeon.cluster.stream_queue import StreamQueue

        return functools.partial(StreamQueue, cluster=self)

    # -- JetStream's API ---------------------------------------------------------------

    async def api(
        self, subject: str, body: dict[str, Any] | None, ok_errors: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        """One JetStream API request; raises on an error not in ``ok_errors``."""
        data = b"" if body is None else json.dumps(body).encode()
        reply = await self.nc.request(subject, data, timeout=API_TIMEOUT)
        answer = json.loads(reply.data)
        if not isinstance(answer, dict):
            raise RuntimeError(f"{subject}: unexpected answer")
        error = answer.get("error")
        if error is not None and error.get("err_code") not in ok_errors:
            raise RuntimeError(f"{subject}: {error.get('description')}")
        return answer

    def write(
        self, queue: StreamQueue, what: str, operation: Callable[[], Awaitable[object]]
    ) -> asyncio.Task[None]:
        """A change to JetStream (create, purge, delete a stream) as a ledger write, so
        that the reply that reports it waits for it as a confirm waits for a PubAck.
        Retried until it succeeds; the changes of one stream run in call order."""
        position = self.ledger.begin()
        stream = queue.names.stream
        previous = self._last_write.get(stream)

        async def attempt() -> None:
            if previous is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await previous
            delay = 0.2
            while True:
                try:
                    await operation()
                    break
                except Exception as error:
                    log.warning("%s of %s: %s (retrying)", what, queue.names.stream, error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self.ledger.done(position)

        task = asyncio.get_running_loop().create_task(attempt())
        self.track(task)
        # Per stream, not per queue object: a queue deleted and declared again at once
        # has its stream created after the old one is deleted, not before.
        self._last_write[stream] = task
        task.add_done_callback(lambda done: self._forget_write(stream, done))
        return task

    def _forget_write(self, stream: str, task: asyncio.Task[None]) -> None:
        if self._last_write.get(stream) is task:
            del self._last_write[stream]

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a task of this front-end until it ends (cancelled by :meth:`close`)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
