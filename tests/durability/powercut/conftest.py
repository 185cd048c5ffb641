"""Fixtures for the power-cut tests: disks on the :mod:`lazyfs` layer.

They need FUSE: Linux, ``/dev/fuse``, ``fusermount3`` (Debian's ``fuse3``),
``mfusepy`` (the ``test`` extra) and the right to mount (root, or a user
allowed by ``fusermount3``). Without one of them the tests are skipped with
the reason, unless ``PIGEON_REQUIRE_POWERCUT=1`` (``.ci/run`` sets it where
``/dev/fuse`` exists), where a missing piece is a failure, so that CI cannot
quietly stop running them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .disk import DiskFailed, PowerDisk

MakeDisk = Callable[..., PowerDisk]


def _missing() -> str | None:
    """Why FUSE cannot be used here, or None."""
    if not sys.platform.startswith("linux"):
        return "power-cut tests need Linux (FUSE)"
    if not os.path.exists("/dev/fuse"):
        return "power-cut tests need /dev/fuse (try: modprobe fuse)"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "power-cut tests need fusermount3 (apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as error:  # OSError: libfuse itself is missing
        return f"power-cut tests need mfusepy and libfuse3: {error}"
    return None


@pytest.fixture(scope="session")
def fuse_works(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip (or fail, where required) unless a lazyfs mount really works here."""
    reason = _missing()
    if reason is None:
        disk = PowerDisk(tmp_path_factory.mktemp("fuse-probe"))
        try:
            disk.mount()
            disk.unmount()
        except DiskFailed as error:
            reason = f"power-cut tests cannot mount FUSE here: {error}"
    if reason is not None:
        if os.environ.get("PIGEON_REQUIRE_POWERCUT") == "1":
            pytest.fail(reason + " (and PIGEON_REQUIRE_POWERCUT=1)")
        pytest.skip(reason)


@pytest.fixture
def make_disk(fuse_works: None, tmp_path: Path) -> Iterator[MakeDisk]:
    """``make_disk(strict=False, sync_latency_ms=0)`` -> a :class:`PowerDisk`, not mounted.

    Every disk is cut at teardown (nothing stays mounted), and a problem the
    layer logged fails the test.
    """
    made: list[PowerDisk] = []

    def make(*, strict: bool = False, sync_latency_ms: float = 0, name: str = "power") -> PowerDisk:
        disk = PowerDisk(tmp_path / name, strict=strict, sync_latency_ms=sync_latency_ms)
        made.append(disk)
        return disk

    yield make
    for disk in made:
        disk.cut()
    for disk in made:
        disk.check_log()
