"""Connection limits: per broker, per vhost and per user.

The AMQP listener asks :meth:`ConnectionLimits.admit` when a socket is
accepted (the broker-wide limit: refused before a byte is parsed, counting
connections that have not authenticated yet too) and
:meth:`ConnectionLimits.open` at ``connection.open`` (vhost and user
limits, RabbitMQ's ``max-connections`` vhost limit and user limit,
answered with 530 NOT_ALLOWED as RabbitMQ does).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pigeon.errors import NotAllowed


@dataclass
class ConnectionLimits:
    max_connections: int | None = None
    per_vhost: dict[str, int] = field(default_factory=dict)
    per_user: dict[str, int] = field(default_factory=dict)
    _sockets: int = 0
    _by_vhost: Counter[str] = field(default_factory=Counter)
    _by_user: Counter[str] = field(default_factory=Counter)

    def admit(self) -> bool:
        """A socket was accepted: False if the broker is full (close it at once)."""
        if self.max_connections is not None and self._sockets >= self.max_connections:
            return False
        self._sockets += 1
        return True

    def leave(self) -> None:
        """A socket admitted by :meth:`admit` is gone."""
        self._sockets = max(0, self._sockets - 1)

    def open(self, vhost: str, user: str) -> None:
        """connection.open: count the connection against its vhost and user, or refuse."""
        vhost_max = self.per_vhost.get(vhost)
        if vhost_max is not None and self._by_vhost[vhost] >= vhost_max:
            raise NotAllowed(f"access to vhost '{vhost}' refused for user '{user}': "
                             f"connection limit ({vhost_max}) is reached")
        user_max = self.per_user.get(user)
        if user_max is not None and self._by_user[user] >= user_max:
            raise NotAllowed(f"Connection refused for user '{user}'. User connection limit "
                             f"({user_max}) is reached")
        self._by_vhost[vhost] += 1
        self._by_user[user] += 1

    def close(self, vhost: str, user: str) -> None:
        """A connection counted by :meth:`open` is gone."""
        for counter, key in ((self._by_vhost, vhost), (self._by_user, user)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    @property
    def sockets(self) -> int:
        return self._sockets
