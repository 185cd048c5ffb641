"""A FUSE filesystem that forgets what was never synced: power cuts on demand.

Run as its own process (``python lazyfs.py BACKING MOUNTPOINT [--strict]``);
the tests start it, wait for the ``mounted`` line on its stdout, run a broker
on MOUNTPOINT, and cut the power by SIGKILLing first the broker, then this
process. BACKING is the disk: after the cut it holds exactly what a disk would
hold after a power cut, and the next mount serves it again. Jepsen's LazyFS is
the model; this is a small Python rendering of the same idea.

What is volatile (the page cache) and what is durable (the disk):

- File data. Writes and truncates change pages kept in this process's memory;
  reads see them. ``fsync``/``fdatasync`` of the file writes its dirty pages
  (and its size) to disk. Data never synced is lost at the cut.
- Names (create, mkdir, rename, unlink, rmdir). By default they reach the disk
  at once, as in LazyFS. With ``--strict`` a directory's names reach the disk
  only when that directory is fsynced, as POSIX promises and no more: fsync
  of a file does not make its name durable, and a new directory (with all it
  holds, synced or not) appears on disk only once the directory holding *its*
  name is synced. A rename is durable when both directories are synced; in
  between, a file may have both names or neither after a cut.
- A clean unmount (SIGTERM, ``fusermount3 -u``) syncs everything, as an
  orderly shutdown of a machine does.

The disk side (BACKING and the synced data) is :mod:`lazydisk`.

Not modelled: torn writes inside one page (except that a cut in the middle of
an fsync leaves it half done), reordering of data writes within one fsync,
metadata (mode, owner, times: kept in memory only, never on disk), hard links,
symlinks and extended attributes (not implemented), rename's flags (mfusepy
drops them). POSIX locks are left to the kernel (no ``lock`` operation).

Single-threaded (``nothreads``): every operation runs alone, so no locking.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazydisk import ROOT_INO, Disk  # beside this script, which is run by path
from mfusepy import FUSE, FuseOSError, Operations

PAGE = 4096
STATFS = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")


@dataclass(eq=False)
class Node:
    """One file or directory as the mount sees it (volatile state)."""

    ino: int
    mode: int
    parent: Node | None
    name: str
    children: dict[str, Node] | None = None  # directories only
    size: int = 0  # files: the size readers see
    disk_size: int = 0  # files: the size of the synced data
    low: int = 0  # smallest size since the last sync: clean bytes past it read as 0
    dirty: dict[int, bytearray] = field(default_factory=dict)  # page -> its bytes
    linked: bool = True  # False once unlinked or replaced
    opened: int = 0
    fd: int = -1  # of the inode file on disk
    mtime: int = field(default_factory=time.time_ns)

    @property
    def is_dir(self) -> bool:
        return self.children is not None


class LazyFS(Operations):  # type: ignore[misc]
    """The FUSE operations. Errors are raised as :class:`FuseOSError`."""

    use_ns = True

    def __init__(
        self, backing: Path, inodes: Path, *, strict: bool, sync_latency: float = 0.0
    ) -> None:
        self.disk = Disk(backing, inodes)
        self.strict = strict
        self.sync_latency = sync_latency
        self.nodes: dict[int, Node] = {}
        self.next_ino = ROOT_INO
        self.root = self._load()

    # -- mount: the disk as it is -----------------------------------------------------

    def _load(self) -> Node:
        shutil.rmtree(self.disk.inodes, ignore_errors=True)  # orphans: freed by "fsck"
        self.disk.inodes.mkdir()
        root = self._new(stat.S_IFDIR | 0o755, None, "")
        pending = [(root, self.disk.backing)]
        while pending:
            directory, where = pending.pop()
            assert directory.children is not None
            for entry in os.scandir(where):
                info = entry.stat(follow_symlinks=False)
                node = self._new(info.st_mode, directory, entry.name)
                directory.children[entry.name] = node
                self.disk.entries[directory.ino][entry.name] = node.ino
                if node.is_dir:
                    self.disk.entries[node.ino] = {}
                    self.disk.place[node.ino] = (directory.ino, entry.name)
                    pending.append((node, Path(entry.path)))
                elif stat.S_ISREG(info.st_mode):
                    os.link(entry.path, self.disk.inode(node.ino))
                    node.size = node.disk_size = node.low = info.st_size
                else:
                    raise SystemExit(f"lazyfs: {entry.path}: only files and folders are served")
        return root

    def _new(self, mode: int, parent: Node | None, name: str) -> Node:
        node = Node(self.next_ino, mode, parent, name)
        if stat.S_ISDIR(mode):
            node.children = {}
        self.nodes[node.ino] = node
        self.next_ino += 1
        return node

    # -- lookups --------------------------------------------------------------------

    def _lookup(self, path: str) -> Node:
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if node.children is None or part not in node.children:
                raise FuseOSError(errno.ENOENT)
            node = node.children[part]
        return node

    def _node(self, path: str | None, fh: int | None) -> Node:
        if fh:  # handles are inode numbers; an unlinked open file has no path
            return self.nodes[fh]
        if path is None:
            raise FuseOSError(errno.EBADF)
        return self._lookup(path)

    def _parent(self, path: str) -> tuple[Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self._lookup(head)
        if parent.children is None:
            raise FuseOSError(errno.ENOTDIR)
        return parent, name

    # -- names: volatile until their directory is synced (strict) or at once ------------

    def _sync_dir(self, directory: Node) -> None:
        assert directory.children is not None
        names = {name: (c.ino, c.is_dir) for name, c in directory.children.items()}
        self.disk.sync_dir(directory.ino, names)

    def _changed(self, *directories: Node) -> None:
        """Names in these directories changed: LazyFS writes them through at once."""
        if not self.strict:
            for directory in directories:
                self._sync_dir(directory)

    # -- file data: the page cache ----------------------------------------------------

    def _fd(self, node: Node) -> int:
        if node.fd < 0:
            node.fd = os.open(self.disk.inode(node.ino), os.O_RDWR)
        return node.fd

    def _clean(self, node: Node, page: int) -> bytes:
        """A page as synced: disk bytes before ``low``, zeros after (truncated since)."""
        start = page * PAGE
        keep = max(0, min(PAGE, node.low - start))
        data = os.pread(self._fd(node), keep, start) if keep else b""
        return data.ljust(PAGE, b"\0")

    def _page(self, node: Node, page: int) -> bytearray:
        """The page's bytes, made dirty (a copy of the clean page on first change)."""
        buf = node.dirty.get(page)
        if buf is None:
            buf = node.dirty[page] = bytearray(self._clean(node, page))
        return buf

    def _sync(self, node: Node) -> None:
        if node.is_dir:
            return
        fd = self._fd(node)
        if node.low < node.disk_size:
            os.ftruncate(fd, node.low)  # what was cut off reads as zeros if it grows again
        for page in sorted(node.dirty):
            start = page * PAGE
            os.pwrite(fd, node.dirty[page][: max(0, node.size - start)], start)
        os.ftruncate(fd, node.size)
        node.dirty.clear()
        node.disk_size = node.low = node.size

    def _truncate(self, node: Node, length: int) -> None:
        if length < node.size:
            for page in [p for p in node.dirty if p * PAGE >= length]:
                del node.dirty[page]
            if length % PAGE:  # the tail of the last page must read as zeros
                buf = self._page(node, length // PAGE)
                buf[length % PAGE :] = bytes(PAGE - length % PAGE)
            node.low = min(node.low, length)
        node.size = length
        node.mtime = time.time_ns()

    # -- FUSE: life cycle -------------------------------------------------------------

    def init(self, path: str) -> None:
        # The tests wait for this line: from now on the mount answers.
        print("mounted", flush=True)

    def destroy(self, path: str) -> None:
        """A clean unmount: everything reaches the disk, as at an orderly shutdown."""
        directories = [self.root]
        for directory in directories:  # parents before children
            self._sync_dir(directory)
            directories += [c for c in (directory.children or {}).values() if c.is_dir]
        for node in list(self.nodes.values()):
            self._sync(node)
            if node.fd >= 0:
                os.close(node.fd)
        shutil.rmtree(self.disk.inodes, ignore_errors=True)

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.disk.backing)
        return {name: getattr(st, name) for name in STATFS}

    # -- FUSE: attributes -------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        node = self._node(path, fh)
        links = (
            2 + sum(c.is_dir for c in node.children.values())
            if node.children is not None
            else int(node.linked)
        )
        return {
            "st_ino": node.ino,
            "st_mode": node.mode,
            "st_nlink": links,
            "st_size": node.size,
            "st_blocks": (node.size + 511) // 512,
            "st_blksize": PAGE,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_atime": node.mtime,
            "st_mtime": node.mtime,
            "st_ctime": node.mtime,
        }

    def chmod(self, path: str | None, mode: int) -> int:
        if path is not None:  # (None: an unlinked open file; its mode no longer matters)
            node = self._lookup(path)
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        return 0  # everything belongs to the mounting user

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        if path is not None:
            self._lookup(path).mtime = times[1] if times else time.time_ns()
        return 0

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        node = self._node(path, fh)
        if node.is_dir:
            raise FuseOSError(errno.EISDIR)
        self._truncate(node, length)
        return 0

    # -- FUSE: names ------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        parent, name = self._parent(path)
        assert parent.children is not None
        if name in parent.children:
            raise FuseOSError(errno.EEXIST)
        node = self._new(stat.S_IFREG | stat.S_IMODE(mode), parent, name)
        self.disk.inode(node.ino).touch()  # the inode exists on disk at once
        parent.children[name] = node
        self._changed(parent)
        node.opened += 1
        return node.ino

    def mkdir(self, path: str, mode: int) -> int:
        parent, name = self._parent(path)
        assert parent.children is not None
        if name in parent.children:
            raise FuseOSError(errno.EEXIST)
        parent.children[name] = self._new(stat.S_IFDIR | stat.S_IMODE(mode), parent, name)
        self._changed(parent)
        return 0

    def unlink(self, path: str) -> int:
        parent, _ = self._parent(path)
        node = self._lookup(path)
        if node.is_dir:
            raise FuseOSError(errno.EISDIR)
        self._detach(node)
        self._changed(parent)
        return 0

    def rmdir(self, path: str) -> int:
        parent, _ = self._parent(path)
        node = self._lookup(path)
        if node.children is None:
            raise FuseOSError(errno.ENOTDIR)
        if node.children:
            raise FuseOSError(errno.ENOTEMPTY)
        self._detach(node)
        self._changed(parent)
        return 0

    def rename(self, old: str, new: str) -> int:
        source, old_name = self._parent(old)
        target, new_name = self._parent(new)
        node = self._lookup(old)
        assert source.children is not None and target.children is not None
        replaced = target.children.get(new_name)
        if replaced is node:
            return 0
        if replaced is not None:
            if replaced.is_dir != node.is_dir:
                raise FuseOSError(errno.EISDIR if replaced.is_dir else errno.ENOTDIR)
            if replaced.children:
                raise FuseOSError(errno.ENOTEMPTY)
            self._detach(replaced)
        del source.children[old_name]
        target.children[new_name] = node
        node.parent, node.name = target, new_name
        self._changed(target, source)  # the new name first: a directory is moved, not copied
        return 0

    def _detach(self, node: Node) -> None:
        assert node.parent is not None and node.parent.children is not None
        del node.parent.children[node.name]
        node.linked = False
        self._forget_if_unused(node)

    def _forget_if_unused(self, node: Node) -> None:
        if node.linked or node.opened:
            return
        del self.nodes[node.ino]
        if node.fd >= 0:
            os.close(node.fd)
            node.fd = -1
        if not node.is_dir:
            self.disk.freed.add(node.ino)
            self.disk.delete_freed()

    # -- FUSE: directories ------------------------------------------------------------

    def opendir(self, path: str) -> int:
        node = self._lookup(path)
        if node.children is None:
            raise FuseOSError(errno.ENOTDIR)
        return node.ino

    def readdir(self, path: str | None, fh: int) -> list[Any]:
        node = self._node(path, fh)
        assert node.children is not None
        entries: list[Any] = [(".", {"st_ino": node.ino, "st_mode": node.mode}, 0)]
        entries.append(("..", {"st_mode": stat.S_IFDIR}, 0))
        for name, child in node.children.items():
            entries.append((name, {"st_ino": child.ino, "st_mode": child.mode}, 0))
        return entries

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        self._sync_dir(self._node(path, fh))
        return 0

    # -- FUSE: file data --------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        node = self._lookup(path)
        node.opened += 1
        return node.ino

    def release(self, path: str | None, fh: int) -> int:
        node = self.nodes[fh]
        node.opened -= 1
        self._forget_if_unused(node)
        return 0

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        node = self._node(path, fh)
        end = min(offset + size, node.size)
        out = bytearray()
        while offset < end:
            page, at = divmod(offset, PAGE)
            take = min(PAGE - at, end - offset)
            buf = node.dirty.get(page)
            out += (buf if buf is not None else self._clean(node, page))[at : at + take]
            offset += take
        return bytes(out)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        node = self._node(path, fh)
        done = 0
        while done < len(data):
            page, at = divmod(offset + done, PAGE)
            take = min(PAGE - at, len(data) - done)
            self._page(node, page)[at : at + take] = data[done : done + take]
            done += take
        node.size = max(node.size, offset + len(data))
        node.mtime = time.time_ns()
        return len(data)

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        # A disk's flush takes time; a race between "confirmed" and "on disk" needs
        # that window to be seen. (The backing folder itself is never fsynced: it only
        # has to outlive this process, not the machine.)
        time.sleep(self.sync_latency)
        self._sync(self._node(path, fh))
        return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("backing", type=Path, help="the disk: a folder that survives the cut")
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="names too are volatile until their directory is fsynced",
    )
    parser.add_argument(
        "--sync-latency-ms", type=float, default=0.0, help="how long each file fsync takes"
    )
    parser.add_argument(
        "--inodes", type=Path, help="where synced data is kept (default: BACKING.inodes beside it)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="lazyfs %(levelname)s %(message)s"
    )
    backing = args.backing.resolve()
    inodes = args.inodes or backing.with_name(backing.name + ".inodes")
    fs = LazyFS(backing, inodes, strict=args.strict, sync_latency=args.sync_latency_ms / 1000)
    # use_ino: SQLite tells files apart by inode number; hard_remove: an unlinked
    # open file is really unlinked (not renamed to .fuse_hidden*); nothreads: one
    # operation at a time, so the state above needs no lock.
    FUSE(
        fs,
        str(args.mountpoint),
        foreground=True,
        nothreads=True,
        use_ino=True,
        hard_remove=True,
        fsname="lazyfs",
    )


if __name__ == "__main__":
    main()
