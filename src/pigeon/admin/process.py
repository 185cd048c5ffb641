"""The process and machine numbers an operator watches: memory, disk, file descriptors.

Read from ``/proc`` where it exists (Linux), with portable fallbacks. The
memory limit is RabbitMQ's default high watermark, 40% of physical memory, and
the free-disk limit its default 50 MB: Pigeon raises no alarms yet, so these
are the thresholds an operator's dashboards compare against.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

MEMORY_HIGH_WATERMARK = 0.4
DISK_FREE_LIMIT = 50_000_000


@dataclass(frozen=True)
class ProcessInfo:
    resident_memory: int
    memory_limit: int
    disk_free: int
    disk_free_limit: int
    open_fds: int
    max_fds: int
    open_sockets: int
    pid: int
    processors: int


def resident_memory() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _descriptors() -> tuple[int, int]:
    """(open file descriptors, of which sockets)."""
    fd_dir = Path("/proc/self/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return 0, 0
    sockets = 0
    for entry in entries:
        try:
            if os.readlink(entry).startswith("socket:"):
                sockets += 1
        except OSError:
            continue
    return len(entries), sockets


def read(data_dir: Path | None) -> ProcessInfo:
    open_fds, sockets = _descriptors()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    where = data_dir if data_dir is not None and data_dir.exists() else Path.cwd()
    try:
        disk_free = shutil.disk_usage(where).free
    except OSError:
        disk_free = 0
    return ProcessInfo(
        resident_memory=resident_memory(),
        memory_limit=int(physical_memory() * MEMORY_HIGH_WATERMARK),
        disk_free=disk_free,
        disk_free_limit=DISK_FREE_LIMIT,
        open_fds=open_fds,
        max_fds=soft if soft != resource.RLIM_INFINITY else 1 << 20,
        open_sockets=sockets,
        pid=os.getpid(),
        processors=os.cpu_count() or 1,
    )
