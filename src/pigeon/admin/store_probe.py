"""How long the store takes to make writes durable, and how much it keeps on disk.

At each sampling tick with writes pending, the probe asks the store to call back
once everything queued so far is on disk and times the wait: the time a
publisher's confirm (or an API change) waits for the disk at that moment. The
node panel shows it as RabbitMQ's ``io_sync_avg_time`` (milliseconds).
Nothing is measured while nothing is written, so an idle broker costs nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path

from pigeon.core.ports import Store

KEPT = 60  # the last so many timings make the average


class StoreProbe:
    def __init__(self, store: Store | None) -> None:
        self.store = store
        self.timings: deque[float] = deque(maxlen=KEPT)
        self.count = 0
        self._waiting = False

    def tick(self) -> None:
        store = self.store
        if store is None or self._waiting or store.durable >= store.written:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._waiting = True

        def on_disk() -> None:
            self._waiting = False
            self.count += 1
            self.timings.append(loop.time() - started)

        store.sync(on_disk)

    def summary(self) -> dict[str, float | int]:
        timings = list(self.timings)
        average = sum(timings) / len(timings) if timings else 0.0
        return {
            "io_sync_count": self.count,
            "io_sync_avg_time": round(average * 1000, 3),
            "io_sync_max_time": round(max(timings, default=0.0) * 1000, 3),
        }


def folder_bytes(folder: Path | None) -> int:
    """Bytes of every file under ``folder`` (the data directory), 0 without one."""
    if folder is None:
        return 0
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
