"""Publisher confirms in cluster mode: positions that advance on JetStream's PubAck.

The confirm path of every protocol asks the node's store two positions, ``written``
(every write queued) and ``durable`` (every write up to here is safe), and
``sync(callback)`` (run once everything written before the call is safe); see
``protocols/amqp091/durable.py``. :class:`PubAckLedger` answers the same three: each
publish to a stream (and each stream created, purged or deleted) takes the next
position; the position counts as durable once JetStream acknowledged it, which in a
replicated stream means a majority of its servers stored it. PubAcks of different
streams come back in any order, so ``durable`` is the end of the unbroken run of
acknowledged positions: a confirm never goes out ahead of an older publish.

A write JetStream never acknowledges (its servers are gone) keeps every later confirm
waiting; the publisher retries it with the same ``Nats-Msg-Id`` (see publisher.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pigeon.core.ports import Store


class PubAckLedger:
    __slots__ = ("_began", "_latency", "_pending", "_waiters", "_written")

    def __init__(self) -> None:
        self._written = 0
        # Positions not acknowledged yet, oldest first (dicts keep insertion order).
        self._pending: dict[int, None] = {}
        self._began: dict[int, float] = {}
        self._waiters: deque[tuple[int, Callable[[], object]]] = deque()
        self._latency = 0.0

    @property
    def written(self) -> int:
        return self._written

    @property
    def durable(self) -> int:
        if not self._pending:
            return self._written
        return next(iter(self._pending)) - 1

    @property
    def queued_writes(self) -> int:
        return len(self._pending)

    @property
    def commit_latency(self) -> float:
        """Seconds from publish to PubAck of the last acknowledged write."""
        return self._latency

    def begin(self) -> int:
        """A write sent to JetStream: its position."""
        self._written += 1
        self._pending[self._written] = None
        self._began[self._written] = time.monotonic()
        return self._written

    def done(self, position: int) -> None:
        """JetStream acknowledged the write at ``position`` (again is harmless)."""
        if self._pending.pop(position, 0) is None:
            self._latency = time.monotonic() - self._began.pop(position)
        durable = self.durable
        waiters = self._waiters
        while waiters and waiters[0][0] <= durable:
            waiters.popleft()[1]()

    def sync(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once every write so far is acknowledged (now, if it is)."""
        if self.durable >= self._written:
            callback()
        else:
            self._waiters.append((self._written, callback))


class ConfirmingStore:
    """The node's store in cluster mode: the local store (definitions, the queues kept
    in this process) whose positions also count the JetStream writes, so that a confirm
    or a reply waits for both. Everything else is the local store's."""

    def __init__(self, local: Store, ledger: PubAckLedger) -> None:
        self.local = local
        self.ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)

    @property
    def written(self) -> int:
        return self.local.written + self.ledger.written

    @property
    def durable(self) -> int:
        return self.local.durable + self.ledger.durable

    @property
    def queued_writes(self) -> int:
        """Publishers are paused while this is large: JetStream's backlog counts too."""
        return self.local.queued_writes + self.ledger.queued_writes

    @property
    def commit_latency(self) -> float:
        return max(self.local.commit_latency, self.ledger.commit_latency)

    def sync(self, callback: Callable[[], object]) -> None:
        """After the local barrier, JetStream's: every write before the call is safe."""
        self.local.sync(lambda: self.ledger.sync(callback))
