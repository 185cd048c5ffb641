"""The durable side of :mod:`lazyfs`: what a disk holds, and what a power cut leaves.

Every file the mount knows has an "inode" on
disk, a file named by its number in INODES (next to BACKING, same
filesystem). Synced data is written there. A durable name is a hard link from
BACKING to it, so data synced before its name was durable survives under
that name once it is. At mount, INODES is emptied (an inode without a durable
name is an orphan, freed as fsck would) and filled again from BACKING.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT_INO = 1


class Disk:
    """The durable side: names in BACKING, synced data in INODES, and the model of both.

    ``entries`` holds, for every directory whose names were ever synced, the
    names as of its last fsync (directory inode -> name -> inode), whether or
    not the directory itself is reachable on disk yet. BACKING shows what is
    reachable from the root through them: a directory appears there once the
    directory holding *its* name is synced. ``place`` says where each
    directory shown in BACKING is (parent inode, name).
    """

    def __init__(self, backing: Path, inodes: Path) -> None:
        self.backing = backing
        self.inodes = inodes
        self.entries: dict[int, dict[str, int]] = {ROOT_INO: {}}
        self.place: dict[int, tuple[int, str]] = {}
        self.freed: set[int] = set()  # inode files to delete once no durable name needs them

    def inode(self, ino: int) -> Path:
        return self.inodes / str(ino)

    def path_of(self, ino: int) -> Path | None:
        """Where a directory is in BACKING, or None if it is not reachable on disk."""
        parts: list[str] = []
        while ino != ROOT_INO:
            if ino not in self.place:
                return None
            ino, name = self.place[ino]
            parts.append(name)
        return self.backing.joinpath(*reversed(parts))

    def sync_dir(self, ino: int, names: dict[str, tuple[int, bool]]) -> None:
        """fsync of a directory: its names now are its names on disk.

        ``names``: name -> (inode, is a directory), as the mount sees them.
        """
        old = self.entries.get(ino, {})
        new = self.entries[ino] = {name: child for name, (child, _) in names.items()}
        where = self.path_of(ino)
        if where is not None:
            for name, child in old.items():
                if new.get(name) != child:
                    self._remove(where / name, ino, name, child)
            for name, (child, is_dir) in names.items():
                if old.get(name) != child:
                    self._put(where / name, ino, name, child, is_dir)
        self.delete_freed()

    def _remove(self, path: Path, parent: int, name: str, ino: int) -> None:
        if ino not in self.entries:
            path.unlink()
        elif self.place.get(ino) == (parent, name):  # not moved elsewhere meanwhile
            self._unplace(ino)
            shutil.rmtree(path)

    def _unplace(self, ino: int) -> None:
        self.place.pop(ino, None)
        for name, child in self.entries.get(ino, {}).items():
            if self.place.get(child) == (ino, name):
                self._unplace(child)

    def _put(self, path: Path, parent: int, name: str, ino: int, is_dir: bool) -> None:
        if not is_dir:
            os.link(self.inode(ino), path)
            return
        entries = self.entries.setdefault(ino, {})
        here = self.path_of(ino)
        self.place[ino] = (parent, name)
        if here is not None:  # renamed: already on disk under its old name
            os.rename(here, path)
            return
        os.mkdir(path)
        for child_name, child in entries.items():  # names it had synced while unreachable
            self._put(path / child_name, ino, child_name, child, child in self.entries)

    def delete_freed(self) -> None:
        if not self.freed:
            return
        needed = {ino for names in self.entries.values() for ino in names.values()}
        for ino in self.freed - needed:
            self.inode(ino).unlink(missing_ok=True)
        self.freed &= needed
