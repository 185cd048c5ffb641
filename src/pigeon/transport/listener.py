"""A bound listening socket, the connections it accepted, and its graceful close."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from ssl import SSLContext
from typing import Generic, Protocol, TypeVar

from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.glue import Connection, Counts, Hub, Tuning
from pigeon.transport.session import Session, SessionFactory

S = TypeVar("S", bound=Session)

# Connections the kernel queues for accept(): asyncio's default (100) drops the SYNs of a
# burst (a thousand clients at once), and a dropped SYN costs its client a 1-s retransmit.
LISTEN_BACKLOG = 1024


class Server(Protocol):
    """What a listener needs of its ``asyncio.Server``."""

    @property
    def sockets(self) -> Sequence[socket.socket]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class Listener(Generic[S]):
    """A bound listener and the connections it accepted."""

    def __init__(self, server: Server, hub: Hub[S]) -> None:
        self.server = server
        self.hub = hub

    @property
    def connections(self) -> set[Connection[S]]:
        return self.hub.connections

    @property
    def port(self) -> int:
        sock = self.server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, shut every connection down, and wait (a while) until their
        sockets are gone, so that no socket outlives the broker."""
        self.server.close()
        connections = list(self.hub.connections)
        for connection in connections:
            connection.shutdown()
        if connections:
            await asyncio.wait(
                [c.wait_closed() for c in connections], timeout=self.hub.tuning.close_timeout
            )
        await self.server.wait_closed()


async def listen(
    factory: SessionFactory[S],
    host: str,
    port: int,
    *,
    limits: ConnectionLimits,
    counts: Counts,
    ssl: SSLContext | None = None,
    tuning: Tuning | None = None,
) -> Listener[S]:
    """Bind ``host:port`` (0: any free port); each accepted socket gets a session."""
    loop = asyncio.get_running_loop()
    hub = Hub(factory, loop, limits, counts, tuning or Tuning())

    def accept() -> Connection[S]:
        return Connection(hub)

    server = await loop.create_server(
        accept,
        host,
        port,
        reuse_address=True,
        ssl=ssl,
        backlog=LISTEN_BACKLOG,
        ssl_handshake_timeout=hub.tuning.handshake_timeout if ssl is not None else None,
    )
    return Listener(server, hub)
