"""What the management layer reads from the broker, as structural types.

The admin package never imports a protocol package or the composition root:
it sees the broker, its client connections and their channels only through
these protocols, which :class:`pigeon.broker.Broker` and the AMQP handler
satisfy as they are. A connection describes itself neutrally
(:class:`pigeon.operations.sessions.SessionInfo`: protocol, peer, user, vhost,
plus the protocol's own extras), so a later protocol (MQTT) shows up here by
having the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from pigeon.config import Config
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.operations.sessions import SessionInfo


class ConsumerLike(Protocol):
    @property
    def tag(self) -> str: ...


class ChannelLike(Protocol):
    """A channel of a connection (a protocol without channels shows one)."""

    @property
    def number(self) -> int: ...
    @property
    def consumers(self) -> Mapping[str, Any]: ...
    @property
    def unacked(self) -> Mapping[int, Any]: ...
    @property
    def stats(self) -> Mapping[str, int]: ...

    def extras(self) -> Mapping[str, object]:
        """The protocol's own fields (AMQP: prefetch, confirm and tx modes)."""
        ...


class HandlerLike(Protocol):
    """One client connection's protocol logic (``AMQPHandler`` for AMQP 0-9-1)."""

    @property
    def peer(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def channels(self) -> Mapping[int, ChannelLike]: ...

    @property
    def want_flush(self) -> Callable[[], None]: ...

    def describe(self) -> SessionInfo: ...

    def shutdown(self, text: str = ...) -> None: ...


class ConnectionLike(Protocol):
    """A live connection as the listener keeps it (``pigeon.transport.glue.Connection``)."""

    @property
    def session(self) -> HandlerLike | None: ...


class BrokerLike(Protocol):
    """What :func:`pigeon.admin.start_management` needs of the broker."""

    @property
    def node(self) -> Node | None: ...
    @property
    def context(self) -> Services | None: ...
    @property
    def config(self) -> Config: ...
    @property
    def connections(self) -> Iterable[ConnectionLike]: ...
    @property
    def amqp_port(self) -> int: ...


class ClusterLike(Protocol):
    """Cluster mode's member (``pigeon.cluster.member.ClusterMember``), as the broker's
    ``cluster`` attribute has it; absent or None on a single node."""

    def overview(self) -> dict[str, Any]: ...

    def describe_with(self, describe: Callable[[], dict[str, Any]]) -> None: ...

    def nodes(self, own: dict[str, Any]) -> list[dict[str, Any]]:
        """Every node of the cluster, ``own`` being this one's description."""
        ...

    async def health(self) -> dict[str, Any]: ...

    async def forget(self, name: str) -> bool: ...

    def gauges(self) -> dict[str, float]: ...


def cluster_of(broker: BrokerLike) -> ClusterLike | None:
    found: ClusterLike | None = getattr(broker, "cluster", None)
    return found
