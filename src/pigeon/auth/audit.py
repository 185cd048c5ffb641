"""The audit log: one JSON object per line, in its own file or stream.

Security-relevant events only (logins, refusals, changes to users,
permissions and definitions, connections opened and closed), never message
contents and never secrets. Each line has ``ts`` (UTC, ISO 8601), ``event``
and the fields of that event. Writing is synchronous and flushed per line:
these events are rare next to messages, and a line lost in a crash is the
one an investigator would want.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class AuditLog:
    """Appends audit events to ``stream`` (or the file at ``path``)."""

    def __init__(self, stream: IO[str] | None = None, *, path: Path | None = None) -> None:
        if (stream is None) == (path is None):
            raise ValueError("give exactly one of stream or path")
        self._owned = stream is None
        if path is not None:
            stream = path.open("a", encoding="utf-8")
        assert stream is not None
        self._stream = stream
        # The management API and the AMQP listener share the log; an embedded
        # broker may also be driven from other threads.
        self._lock = threading.Lock()

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"ts": _now(), "event": event, **fields},
            default=str,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        with self._lock:
            if self._stream.closed:
                return
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._owned and not self._stream.closed:
                self._stream.close()

    # -- the events ----------------------------------------------------------------

    def login_succeeded(self, user: str, peer: str, mechanism: str) -> None:
        self.record("login.succeeded", user=user, peer=peer, mechanism=mechanism)

    def login_failed(self, user: str, peer: str, mechanism: str, reason: str) -> None:
        self.record("login.failed", user=user, peer=peer, mechanism=mechanism, reason=reason)

    def login_failures(
        self,
        source: str,
        count: int,
        users: dict[str, int],
        reasons: dict[str, int],
        *,
        seconds: float,
    ) -> None:
        """Refused logins from one address past the first few of a window, summed up
        (``pigeon.auth.refusals``): a flood costs one line, not one per attempt."""
        self.record(
            "login.failed.summary",
            peer=source,
            count=count,
            users=users,
            reasons=reasons,
            seconds=seconds,
        )

    def access_refused(self, user: str, peer: str, vhost: str, text: str, **details: Any) -> None:
        self.record("access.refused", user=user, peer=peer, vhost=vhost, text=text, **details)

    def connection_opened(
        self, peer: str, user: str, vhost: str, protocol: str = "amqp091", tls: bool = False
    ) -> None:
        self.record(
            "connection.opened", peer=peer, user=user, vhost=vhost, protocol=protocol, tls=tls
        )

    def connection_closed(self, peer: str, user: str, reason: str = "") -> None:
        self.record("connection.closed", peer=peer, user=user, reason=reason)

    def changed(self, actor: str, action: str, **details: Any) -> None:
        """A user, permission, vhost or definitions change (``action`` such as
        ``user.put``, ``permission.delete``, ``definitions.import``)."""
        self.record("config.changed", actor=actor, action=action, **details)
