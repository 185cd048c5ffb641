"""What the management layer reads from the broker, as structural types.

The admin package never imports a protocol package or the composition root:
it sees the broker, its client connections and their channels only through
these protocols, which :class:`pigeon.broker.Broker` and the AMQP handler
satisfy as they are. A later protocol (MQTT) shows up here by having the same
shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from pigeon.config import Config
from pigeon.core.node import Node
from pigeon.operations.services import Services


class ConsumerLike(Protocol):
    @property
    def tag(self) -> str: ...


class ChannelLike(Protocol):
    @property
    def number(self) -> int: ...
    @property
    def consumers(self) -> Mapping[str, Any]: ...
    @property
    def unacked(self) -> Mapping[int, Any]: ...
    @property
    def consumer_prefetch(self) -> int: ...
    @property
    def global_prefetch(self) -> int: ...
    @property
    def confirming(self) -> bool: ...
    @property
    def tx(self) -> object | None: ...
    @property
    def stats(self) -> Mapping[str, int]: ...


class HandlerLike(Protocol):
    """One client connection's protocol logic (``AMQPHandler`` for AMQP 0-9-1)."""

    @property
    def peer(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def client_properties(self) -> dict[str, Any]: ...
    @property
    def channels(self) -> Mapping[int, ChannelLike]: ...

    @property
    def want_flush(self) -> Callable[[], None]: ...

    def describe(self) -> dict[str, Any]: ...

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
