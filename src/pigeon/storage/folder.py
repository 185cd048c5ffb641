"""Folders whose names survive a power cut.

A new file or folder is only reachable after a power cut once the directory
holding its name has been fsynced (POSIX makes no promise before that, and
ext4, XFS and btrfs each keep new names in memory for a while). SQLite syncs
the folder itself when it creates its journal or WAL, but nothing synced the
data folder into *its* parent: a broker started on a new folder could confirm
messages, lose power, and come back with no folder at all.
"""

from __future__ import annotations

import os
from pathlib import Path


def make_durable(path: Path, *, fsync: bool = True) -> None:
    """Create ``path`` (and missing parents), each name synced into its parent.

    ``fsync=False`` (``--unsafe-no-fsync``) only creates them.
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
            sync_folder(folder.parent)


def sync_folder(path: Path) -> None:
    """fsync a directory: the names it holds (created, renamed, removed) reach the disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
