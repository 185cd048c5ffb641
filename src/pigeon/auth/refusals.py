"""Refused logins into the audit log and the broker log, summed up during a flood.

Every refusal is accounted for, but a flood of them must not become a cost of
its own (a flushed audit line and a log line per attempt, thousands a second).
Per source address and window of :data:`WINDOW` seconds, the first
:data:`BURST` refusals are written one by one (``login.failed``); the rest are
counted and written as one ``login.failed.summary`` line when the window
closes, with how many there were, the user names tried and the reasons.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass, field

from pigeon.auth.audit import AuditLog
from pigeon.core.ports import Scheduler

log = logging.getLogger("pigeon.auth")

WINDOW = 10.0
BURST = 5
# Distinct user names kept per summary: an attacker may try a new name each time.
SUMMARY_NAMES = 20
_NAME_CHARS = 128


def source_of(peer: str) -> str:
    """The address that throttling and summaries group by: the IP of a ``host:port``
    peer, and for IPv6 its /64 (one subscriber's network, which a single attacker
    can rotate addresses within)."""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 client of a dual-stack listener
            return str(address.ipv4_mapped)
        if not address.is_loopback:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass
class _Window:
    count: int = 0
    names: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, reason: str) -> None:
        name = name[:_NAME_CHARS]
        if name in self.names or len(self.names) < SUMMARY_NAMES:
            self.names[name] += 1
        else:
            self.names["(other names)"] += 1
        self.reasons[reason] += 1


class RefusalLog:
    """Writes refused logins; without a scheduler (sans-IO use) every one in full."""

    def __init__(self, audit: AuditLog | None, scheduler: Scheduler | None = None) -> None:
        self.audit = audit
        self.scheduler = scheduler
        self._windows: dict[str, _Window] = {}

    def refused(self, name: str, peer: str, mechanism: str, reason: str) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            self._write(name, peer, mechanism, reason)
            return
        source = source_of(peer)
        window = self._windows.get(source)
        if window is None:
            window = self._windows[source] = _Window()
            scheduler.call_later(WINDOW, lambda: self._close(source))
        window.count += 1
        if window.count <= BURST:
            self._write(name, peer, mechanism, reason)
        else:
            window.add(name, reason)

    def _write(self, name: str, peer: str, mechanism: str, reason: str) -> None:
        log.info("login refused for user %r from %s (%s): %s", name, peer, mechanism, reason)
        if self.audit is not None:
            self.audit.login_failed(name, peer, mechanism, reason)

    def _close(self, source: str) -> None:
        window = self._windows.pop(source, None)
        if window is None:
            return
        suppressed = window.count - BURST
        if suppressed <= 0:
            return
        log.warning(
            "%d more logins refused from %s in %.0f s (%s)",
            suppressed,
            source,
            WINDOW,
            ", ".join(f"{reason}: {n}" for reason, n in window.reasons.items()),
        )
        if self.audit is not None:
            self.audit.login_failures(
                source, suppressed, dict(window.names), dict(window.reasons), seconds=WINDOW
            )

    def flush(self) -> None:
        """Write the open windows' summaries now (the broker is stopping)."""
        for source in list(self._windows):
            self._close(source)
