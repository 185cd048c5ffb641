"""The process and machine numbers an operator watches: memory, disk, file descriptors.

Read from ``/proc`` where it exists (Linux). The limits are the broker's own
alarm thresholds (``memory_high_watermark``, ``disk_free_limit``), measured the
same way the broker's resource monitor measures them (``pigeon.resources``).
"""

from __future__ import annotations

import os
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path

from pigeon.config import Config
from pigeon.resources import memory_limit, resident_memory


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


def read(config: Config) -> ProcessInfo:
    data_dir = config.data_dir
    open_fds, sockets = _descriptors()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    where = data_dir if data_dir is not None and data_dir.exists() else Path.cwd()
    try:
        disk_free = shutil.disk_usage(where).free
    except OSError:
        disk_free = 0
    return ProcessInfo(
        resident_memory=resident_memory(),
        memory_limit=memory_limit(config.memory_high_watermark),
        disk_free=disk_free,
        disk_free_limit=config.disk_free_limit,
        open_fds=open_fds,
        max_fds=soft if soft != resource.RLIM_INFINITY else 1 << 20,
        open_sockets=sockets,
        pid=os.getpid(),
        processors=os.cpu_count() or 1,
    )
