"""What a run is doing right now: its phase, its counters, the broker's CPU and peak RSS.

A ``Monitor`` samples the broker process every 100 ms on the run's own event
loop (one ``/proc`` read, a few µs) to catch the peak RSS, and once a second
hands a ``Tick`` to an observer such as the progress display.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from pigeon.bench.process import ProcSample, sample_process

SAMPLE_INTERVAL = 0.1
TICK_EVERY = 10  # samples, so one tick a second


@dataclass(frozen=True)
class Tick:
    elapsed_s: float
    phase: str
    published_per_s: float
    consumed_per_s: float
    in_flight: int  # publishes not yet confirmed
    broker_cores: float | None


Counters = Callable[[], tuple[int, int, int]]  # (published, consumed, in flight)
Observer = Callable[[Tick], None]


def _no_counters() -> tuple[int, int, int]:
    return (0, 0, 0)


class Monitor:
    def __init__(self, pid: int = 0, observer: Observer | None = None) -> None:
        self.pid = pid
        self.observer = observer
        self.phase = "setup"
        self.counters: Counters = _no_counters
        self.peak_rss_bytes = 0
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> ProcSample | None:
        """The broker's CPU and RSS now (``None`` without a readable pid); updates the peak."""
        if not self.pid:
            return None
        found = sample_process(self.pid)
        if found is not None:
            self.peak_rss_bytes = max(self.peak_rss_bytes, found.rss_bytes)
        return found

    def start(self) -> None:
        self._started = time.monotonic()
        if self.pid or self.observer is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()

    async def _run(self) -> None:
        last_time, last_counts, last_cpu = time.monotonic(), self.counters(), self.sample()
        samples = 0
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            broker = self.sample()
            samples += 1
            if samples % TICK_EVERY or self.observer is None:
                continue
            now, counts = time.monotonic(), self.counters()
            span = max(now - last_time, 1e-9)
            cores = None
            if broker is not None and last_cpu is not None:
                cores = (broker.cpu_s - last_cpu.cpu_s) / span
            self.observer(
                Tick(
                    elapsed_s=now - self._started,
                    phase=self.phase,
                    published_per_s=(counts[0] - last_counts[0]) / span,
                    consumed_per_s=(counts[1] - last_counts[1]) / span,
                    in_flight=counts[2],
                    broker_cores=cores,
                )
            )
            last_time, last_counts, last_cpu = now, counts, broker
