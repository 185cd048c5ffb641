"""A disk whose power can be cut: :mod:`lazyfs` in a child process, mounted and unmounted.

``mount()`` starts ``lazyfs.py BACKING MOUNTPOINT`` and returns once it has
printed ``mounted``. ``freeze()`` SIGSTOPs it: from that instant nothing more
reaches the disk (an operation it was in the middle of stays half done).
``cut()`` SIGKILLs it: what it kept in memory (everything not synced) is
gone, BACKING holds what a disk would hold after a power cut, and the dead
mount is detached. ``unmount()`` is the clean way out (everything
is synced, as at an orderly shutdown). Whatever the layer logs on stderr is
kept; a warning or a traceback there is a bug of the layer.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LAZYFS = Path(__file__).with_name("lazyfs.py")
MOUNT_TIMEOUT = 20.0


class DiskFailed(AssertionError):
    """The layer did not mount, did not unmount, or logged a problem."""


class PowerDisk:
    """BACKING (the disk) served at MOUNTPOINT through the power-cut layer."""

    def __init__(self, root: Path, *, strict: bool = False, sync_latency_ms: float = 0) -> None:
        self.backing = root / "disk"
        self.mountpoint = root / "mnt"
        self.strict = strict
        self.sync_latency_ms = sync_latency_ms
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.log: list[str] = []
        self._child: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def mounted(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def mount(self) -> None:
        assert not self.mounted, "already mounted"
        command = [sys.executable, str(LAZYFS), str(self.backing), str(self.mountpoint)]
        child = subprocess.Popen(
            [
                *command,
                *(["--strict"] if self.strict else []),
                f"--sync-latency-ms={self.sync_latency_ms}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._child = child
        self._reader = threading.Thread(target=self._read_log, args=(child,), daemon=True)
        self._reader.start()
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], MOUNT_TIMEOUT)
        line = child.stdout.readline() if ready else b""
        if line.strip() != b"mounted":
            self.cut()
            raise DiskFailed(f"lazyfs did not mount (printed {line!r}):\n" + "\n".join(self.log))

    def _read_log(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stderr is not None
        with child.stderr:
            for line in child.stderr:
                self.log.append(line.decode(errors="replace").rstrip("\n"))

    def freeze(self) -> None:
        """The disk stops at once; the processes using it block until ``cut()``."""
        if self.mounted:
            assert self._child is not None
            self._child.send_signal(signal.SIGSTOP)

    def cut(self) -> None:
        """Power off: the layer dies with everything it had not synced."""
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGKILL)
        self._reap()
        # The dead mount still hangs on the mount point ("transport endpoint is not
        # connected") until it is detached.
        if os.path.ismount(self.mountpoint) or _dead_mount(self.mountpoint):
            _fusermount("-u", "-z", self.mountpoint)

    def unmount(self) -> None:
        """A clean unmount: the layer syncs everything, then exits."""
        if not self.mounted:
            return
        _fusermount("-u", self.mountpoint)
        assert self._child is not None
        try:
            self._child.wait(timeout=MOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.cut()
            raise DiskFailed("lazyfs did not exit after a clean unmount") from None
        self._reap()
        if self._child.returncode != 0:
            log = "\n".join(self.log)
            raise DiskFailed(f"lazyfs exited with {self._child.returncode}:\n{log}")

    def _reap(self) -> None:
        if self._child is not None:
            self._child.wait(timeout=MOUNT_TIMEOUT)
            if self._child.stdout is not None:
                self._child.stdout.close()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def check_log(self) -> None:
        """The layer logs nothing when all is well (mfusepy logs failed operations)."""
        if self.log:
            raise DiskFailed("lazyfs logged:\n" + "\n".join(self.log[-40:]))


def _dead_mount(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError:  # ENOTCONN: the layer is gone, its mount is still there
        return True
    return False


def _fusermount(*args: object) -> None:
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while True:
        done = subprocess.run([tool, *map(str, args)], capture_output=True, text=True)
        if done.returncode == 0:
            return
        # EBUSY for a moment after a killed process's files close: retry, bounded.
        if "busy" not in done.stderr or time.monotonic() > deadline:
            raise DiskFailed(f"{tool} {' '.join(map(str, args))}: {done.stderr.strip()}")
        time.sleep(0.05)
