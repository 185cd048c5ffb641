"""Interfaces the core needs from the outside world (ports, in the hexagonal sense).

The core never imports asyncio or a storage engine; the composition root
(``pigeon.broker``) hands it objects that satisfy these protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Time and timers. ``asyncio.AbstractEventLoop`` satisfies it as it is."""

    def time(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...

    def call_soon(self, callback: Callable[[], object]) -> TimerHandle: ...
