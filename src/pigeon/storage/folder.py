"""Folders whose names survive a power cut.

A new file or folder is only reachable after a power cut once the directory
holding its name has been fsynced (POSIX makes no promise before that, and
ext4, XFS and btrfs each keep new names in memory for a while). SQLite syncs
the folder itself when it creates its journal or WAL, but nothing synced the
data folder into *its* parent: a broker started on a new folder could confirm
messages, lose power, and come back with no folder at all.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("pigeon.storage")


def make_durable(path: Path, *, fsync: bool = True) -> None:
    """Create ``path`` (and missing parents), each name synced into its parent.

    A folder that already exists is synced into its parent too: whoever made it
    (``mkdir data`` before the first start) may not have synced it. ``fsync=False``
    (``--unsafe-no-fsync``) only creates them.
    """
    missing: list[Path] = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        # exist_ok: another process may create it at the same moment; the sync below
        # is still ours to do, since that process may lose power before it syncs.
        folder.mkdir(exist_ok=True)
        if fsync:
            _sync_parent(folder)
    if fsync and not missing:
        _sync_parent(path)


def _sync_parent(folder: Path) -> None:
    try:
        sync_folder(folder.parent)
    except OSError as error:  # e.g. a parent we may write into but not read
        log.warning(
            "could not sync %s into its parent (%s): a power cut soon after it was "
            "created could lose the folder",
            folder,
            error.strerror or error,
        )


def sync_folder(path: Path) -> None:
    """fsync a directory: the names it holds (created, renamed, removed) reach the disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
