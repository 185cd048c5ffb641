"""Watches memory and free disk and raises the broker's resource alarms.

RabbitMQ's defaults: the memory alarm at 40% of the machine's RAM (the
``vm_memory_high_watermark``), the disk alarm below 50 MB free in the data
folder (``disk_free_limit``). Checked once a second, off nothing but /proc and
``statvfs``: cheap enough to never matter.

Before the alarm, paging: above ``paging_memory`` (by default half the alarm's
limit, RabbitMQ's ``vm_memory_high_watermark_paging_ratio``, but at most 256 MiB)
every queue pages
its backlog out to the data folder, and publishers are slowed to the pace of
those writes (flow control, not ``connection.blocked``); with the alarm on they
do so too, so that the alarm clears once the backlog is on disk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pigeon.core.alarms import Alarms
from pigeon.core.paging import MemoryBudget
from pigeon.core.ports import Scheduler, TimerHandle

log = logging.getLogger("pigeon.resources")

CHECK_INTERVAL = 1.0
# Above this resident size, freed heap memory is handed back to the OS each check.
TRIM_ABOVE = 128 * 1024 * 1024


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim: message bodies are malloc'd one by one, and after a backlog
    drains (or is paged out) glibc keeps the freed memory unless asked to return it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


release_free_memory = _malloc_trim()


def resident_memory() -> int:
    """This process's resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def total_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def memory_limit(watermark: float) -> int:
    """A watermark up to 1.0 is a fraction of RAM; above, a number of bytes."""
    return int(watermark * total_memory()) if watermark <= 1.0 else int(watermark)


# A fraction of the alarm's limit pages at this many bytes at most. Half of RabbitMQ's
# 40% of RAM is gigabytes on a large machine: a transient backlog would grow that far
# before paging held it back, so the fraction follows RabbitMQ's paging ratio on small
# machines and stops here on large ones. A value in bytes is taken as given.
PAGING_CAP = 256 * 1024 * 1024


def paging_limit(paging_memory: float, limit: int) -> int:
    """``paging_memory`` up to 1.0 is a fraction of the memory alarm's limit, at most
    :data:`PAGING_CAP`; above 1.0, bytes. 0: no limit (the machine's memory is unknown)."""
    if paging_memory > 1.0:
        return int(paging_memory)
    return min(int(paging_memory * limit), PAGING_CAP)


class ResourceMonitor:
    def __init__(
        self,
        alarms: Alarms,
        scheduler: Scheduler,
        *,
        memory_watermark: float,
        disk_free_limit: int,
        data_dir: Path | None,
        store_failing: Callable[[], bool] = lambda: False,
        paging: MemoryBudget | None = None,
        paging_memory: float = 0.5,
        reduce_memory: Callable[[], object] = lambda: None,
    ) -> None:
        self.alarms = alarms
        self.scheduler = scheduler
        self.memory_limit = memory_limit(memory_watermark)
        # Where queues page out (None: a broker without a data folder keeps it all).
        self.paging = paging
        self.paging_limit = paging_limit(paging_memory, self.memory_limit)
        if paging is not None and self.paging_limit:
            paging.limit = self.paging_limit
        self.reduce_memory = reduce_memory
        self.disk_free_limit = disk_free_limit
        self.data_dir = data_dir
        self.store_failing = store_failing
        self.memory = 0
        self.disk_free: int | None = None
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        self.check()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def check(self) -> None:
        self.memory = resident_memory()
        paging = self.paging is not None and self.paging.pressed
        if (self.memory > TRIM_ABOVE or paging) and release_free_memory is not None:
            release_free_memory()
            self.memory = resident_memory()
        over = bool(self.memory_limit) and self.memory > self.memory_limit
        self._set("memory", over, f"memory use {self.memory} bytes, limit {self.memory_limit}")
        self._page(over)
        low = self.store_failing()
        if self.data_dir is not None:
            try:
                self.disk_free = shutil.disk_usage(self.data_dir).free
            except OSError:
                self.disk_free = None
            if self.disk_free is not None and self.disk_free < self.disk_free_limit:
                low = True
        self._set("disk", low, f"free disk {self.disk_free} bytes, limit {self.disk_free_limit}")
        self._timer = self.scheduler.call_later(CHECK_INTERVAL, self.check)

    def _page(self, alarm: bool) -> None:
        """Over the paging threshold (or the alarm's): every queue pages out its backlog."""
        paging = self.paging
        if paging is None:
            return
        pressed = alarm or (bool(self.paging_limit) and self.memory > self.paging_limit)
        if pressed and not paging.pressed:
            log.info(
                "memory use %d bytes is over the paging threshold %d: queues page out",
                self.memory,
                self.paging_limit,
            )
        paging.pressed = pressed
        if pressed:
            self.reduce_memory()

    def _set(self, name: str, raised: bool, detail: str) -> None:
        if raised == (name in self.alarms.active):
            return
        if raised:
            log.warning("%s alarm set (%s): publishers are blocked", name, detail)
        else:
            log.info("%s alarm cleared (%s)", name, detail)
        self.alarms.set(name, raised)
