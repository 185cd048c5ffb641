"""Interfaces the core needs from the outside world (ports, in the hexagonal sense).

The core never imports asyncio or a storage engine; the composition root
(``pigeon.broker``) hands it objects that satisfy these protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pigeon.core.queue import Entry, Queue


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Time and timers. ``asyncio.AbstractEventLoop`` satisfies it as it is."""

    def time(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...

    def call_soon(self, callback: Callable[[], object]) -> TimerHandle: ...


class DeliveryObserver(Protocol):
    """Told of each delivery and acknowledgement (latency metrics); must be cheap."""

    def delivered(self, queue: Queue, entry: Entry) -> None: ...

    def acked(self, queue: Queue, entry: Entry) -> None: ...
