"""The broker's process as seen from outside: which pid listens on a port, its CPU and RSS.

Everything reads Linux's ``/proc`` and answers ``None`` where it cannot (another
user's process, a process that exited, a system without ``/proc``): the report
then says "n/a" instead of failing the run.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

# /proc/net/tcp "st" column: TCP_LISTEN is 10 (include/net/tcp_states.h).
_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket from ``/proc/net/tcp`` or ``/proc/net/tcp6``."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: int


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system) and resident memory of one process."""

    cpu_s: float
    rss_bytes: int


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_listeners(text: str) -> list[Listener]:
    """The LISTEN sockets in the text of ``/proc/net/tcp`` or ``/proc/net/tcp6``.

    Addresses are hex in host byte order per 32-bit word (little-endian on the
    machines this runs on), ports are hex, the inode is the 10th column.
    """
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        hex_address, hex_port = fields[1].rsplit(":", 1)
        raw = bytes.fromhex(hex_address)
        ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        found.append(Listener(ipaddress.ip_address(ordered), int(hex_port, 16), int(fields[9])))
    return found


def _reaches_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def listening_inodes(port: int) -> set[int]:
    """Inodes of the sockets listening on ``port`` that a loopback client reaches."""
    inodes: set[int] = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for listener in parse_listeners(text):
            if listener.port == port and listener.inode and _reaches_loopback(listener.address):
                inodes.add(listener.inode)
    return inodes


def find_listener_pid(port: int) -> int | None:
    """The pid of a process holding a socket that listens on loopback ``port``, if visible.

    A process's ``/proc/<pid>/fd`` links read ``socket:[<inode>]``; processes of
    other users are not readable and are skipped. This process is looked at
    first (a broker embedded in it, as in the tests).
    """
    links = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    if not links:
        return None
    try:
        others = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid()]
    except OSError:
        return None
    return next((pid for pid in [os.getpid(), *others] if _holds(pid, links)), None)


def _holds(pid: int, links: set[str]) -> bool:
    try:
        fds: Iterable[str] = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in links:
                return True
        except OSError:
            continue
    return False


def sample_process(pid: int) -> ProcSample | None:
    """Read ``/proc/<pid>/stat`` (utime, stime: fields 14 and 15) and ``statm``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/statm", "rb") as f:
            resident_pages = int(f.read().split()[1])
        # The command name (field 2) may hold spaces; fields after it follow ')'.
        fields = stat[stat.rindex(b")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        return ProcSample(cpu_s=cpu, rss_bytes=resident_pages * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return None
