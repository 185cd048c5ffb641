"""A fake transport and a manual clock for the transport glue (no sockets, no loop).

Shaped after uvicorn's ``MockTransport``/``MockLoop`` (tests/protocols/test_http.py):
the glue under test gets objects that record what it does and run its callbacks
only when the test says so.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.glue import Connection, Hub, Tuning
from pigeon.transport.session import Session, SessionFactory

S = TypeVar("S", bound=Session)


class Handle:
    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A scheduler whose time moves only in :meth:`advance`, and whose ready callbacks
    run only in :meth:`turn` (one loop iteration) or :meth:`run`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._ready: list[Handle] = []
        self._timers: list[tuple[float, int, Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[[], object]) -> Handle:
        handle = Handle(callback)
        self._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], object]) -> Handle:
        handle = Handle(callback)
        heapq.heappush(self._timers, (self.now + delay, next(self._order), handle))
        return handle

    def turn(self) -> int:
        """One loop iteration: the callbacks ready when it starts (later ones wait)."""
        ready, self._ready = self._ready, []
        ran = 0
        for handle in ready:
            if not handle.cancelled:
                handle.callback()
                ran += 1
        return ran

    def run(self) -> None:
        """Loop iterations until nothing is ready (timers are left alone)."""
        while self._ready:
            self.turn()

    def advance(self, seconds: float) -> None:
        """Move time on, firing the timers that fall due in order, each followed by the
        callbacks it made ready."""
        until = self.now + seconds
        self.run()
        while self._timers and self._timers[0][0] <= until:
            due, _, handle = heapq.heappop(self._timers)
            self.now = due
            if not handle.cancelled:
                handle.callback()
            self.run()
        self.now = until


class FakeTransport:
    """Records writes and reading pauses; closing reports the loss to the protocol
    through ``schedule`` (as asyncio's transports do, on the next loop iteration)."""

    def __init__(
        self,
        schedule: Callable[[Callable[[], object]], object],
        peername: Any = ("127.0.0.1", 40000),
    ) -> None:
        self.schedule = schedule
        self.peername = peername
        self.protocol: Connection[Any] | None = None
        self.writes: list[bytes] = []
        self.reading = True
        self.closing = False
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peername}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    @property
    def output(self) -> bytes:
        return b"".join(self.writes)

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.writes.append(data)

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading, "resumed while reading"
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self._lose()

    def abort(self) -> None:
        self.aborted = True
        self._lose()

    def _lose(self) -> None:
        if self.closing:
            return
        self.closing = True
        protocol = self.protocol
        if protocol is not None:
            self.schedule(lambda: protocol.connection_lost(None))


class Stats:
    connections_opened = 0
    connections_closed = 0


def hub(
    factory: SessionFactory[S],
    clock: ManualClock,
    *,
    limits: ConnectionLimits | None = None,
    **tuning: Any,
) -> Hub[S]:
    return Hub(factory, clock, limits or ConnectionLimits(), Stats(), Tuning(**tuning))


def connect(hub: Hub[S], clock: ManualClock) -> tuple[Connection[S], FakeTransport]:
    """A connection accepted by ``hub`` on a fake transport."""
    connection = Connection(hub)
    transport = FakeTransport(clock.call_soon)
    transport.protocol = connection
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport
