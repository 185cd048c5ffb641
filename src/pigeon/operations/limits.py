"""Connection and channel limits: per broker, per vhost and per user.

The AMQP listener asks :meth:`ConnectionLimits.admit` when a socket is
accepted (the broker-wide limit: refused before a byte is parsed, counting
connections that have not authenticated yet too) and
:meth:`ConnectionLimits.open` at ``connection.open`` (vhost and user
limits, RabbitMQ's ``max-connections`` vhost limit and user limit,
answered with 530 NOT_ALLOWED as RabbitMQ does), and
:meth:`ConnectionLimits.open_channel` for a user's ``max-channels`` (and to count
channels opened and closed: every channel passes here).

The vhost and user limits set at run time (``/api/vhost-limits``,
``/api/user-limits``) come through ``lookup``; the configuration's
``per_vhost``/``per_user`` apply where none is set. A negative limit is no limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pigeon.errors import NotAllowed


class ChannelCounts(Protocol):
    """Where opened and closed channels are counted (the core's ``NodeStats``)."""

    channels_opened: int
    channels_closed: int


@dataclass
class ConnectionLimits:
    max_connections: int | None = None
    per_vhost: dict[str, int] = field(default_factory=dict)
    per_user: dict[str, int] = field(default_factory=dict)
    # (kind, name, limit) -> the limit set at run time, if any; kind is "vhost" or "user".
    lookup: Callable[[str, str, str], int | None] | None = None
    counts: ChannelCounts | None = None
    _sockets: int = 0
    _by_vhost: Counter[str] = field(default_factory=Counter)
    _by_user: Counter[str] = field(default_factory=Counter)
    _channels: Counter[str] = field(default_factory=Counter)

    def admit(self) -> bool:
        """A socket was accepted: False if the broker is full (close it at once)."""
        if self.max_connections is not None and self._sockets >= self.max_connections:
            return False
        self._sockets += 1
        return True

    def leave(self) -> None:
        """A socket admitted by :meth:`admit` is gone."""
        self._sockets = max(0, self._sockets - 1)

    def _limit(self, kind: str, name: str, limit: str) -> int | None:
        value = self.lookup(kind, name, limit) if self.lookup is not None else None
        if value is None and limit == "max-connections":
            value = (self.per_vhost if kind == "vhost" else self.per_user).get(name)
        return None if value is None or value < 0 else value

    def open(self, vhost: str, user: str) -> None:
        """connection.open: count the connection against its vhost and user, or refuse."""
        vhost_max = self._limit("vhost", vhost, "max-connections")
        if vhost_max is not None and self._by_vhost[vhost] >= vhost_max:
            raise NotAllowed(
                f"access to vhost '{vhost}' refused for user '{user}': "
                f"connection limit ({vhost_max}) is reached"
            )
        user_max = self._limit("user", user, "max-connections")
        if user_max is not None and self._by_user[user] >= user_max:
            raise NotAllowed(
                f"connection refused for user '{user}': user connection limit "
                f"({user_max}) is reached"
            )
        self._by_vhost[vhost] += 1
        self._by_user[user] += 1

    def open_channel(self, user: str) -> None:
        """channel.open: count it against the user's ``max-channels``, or refuse."""
        limit = self._limit("user", user, "max-channels")
        if limit is not None and self._channels[user] >= limit:
            raise NotAllowed(
                f"number of channels opened for user '{user}' has reached the "
                f"maximum allowed user limit of ({limit})"
            )
        self._channels[user] += 1
        if self.counts is not None:
            self.counts.channels_opened += 1

    def close_channel(self, user: str) -> None:
        if self.counts is not None:
            self.counts.channels_closed += 1
        self._channels[user] -= 1
        if self._channels[user] <= 0:
            del self._channels[user]

    def close(self, vhost: str, user: str) -> None:
        """A connection counted by :meth:`open` is gone."""
        for counter, key in ((self._by_vhost, vhost), (self._by_user, user)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    @property
    def sockets(self) -> int:
        return self._sockets
