"""The AMQP 0-9-1 listener: the transport's listener with AMQP's sessions.

Sockets, turns, output and timers are :mod:`pigeon.transport.glue`'s; what is
AMQP's is here: resource alarms (``connection.blocked``) releasing blocked
connections, and closing the connections of a deleted vhost (320).
"""

from __future__ import annotations

import asyncio
from ssl import SSLContext

from pigeon.operations.services import Services
from pigeon.protocols.amqp091.adapter import AMQPSettings
from pigeon.protocols.amqp091.session import AMQPSession, session_factory
from pigeon.transport.glue import Connection
from pigeon.transport.listener import Listener, listen


class AMQPListener:
    """A bound AMQP listener and the connections it accepted."""

    def __init__(self, listener: Listener[AMQPSession], context: Services) -> None:
        self.listener = listener
        self.context = context
        context.alarms.listeners.append(self._alarms_changed)

    @property
    def connections(self) -> set[Connection[AMQPSession]]:
        return self.listener.connections

    @property
    def port(self) -> int:
        return self.listener.port

    def _alarms_changed(self, active: bool) -> None:
        if active:
            return  # a connection blocks itself when it next publishes (adapter.py)
        for connection in list(self.connections):
            session = connection.session
            if session is not None and session.blocked:
                session.unblock()
                connection.want_flush()
                connection.resume()

    def close_vhost(self, vhost: str) -> None:
        """A vhost was deleted: its connections are closed, as RabbitMQ does (320)."""
        for connection in list(self.connections):
            session = connection.session
            if session is not None and session.vhost_name == vhost:
                session.shutdown(f"CONNECTION_FORCED - vhost '{vhost}' is deleted")
                connection.close_now()

    async def close(self) -> None:
        if self._alarms_changed in self.context.alarms.listeners:
            self.context.alarms.listeners.remove(self._alarms_changed)
        await self.listener.close()


async def start_listener(
    context: Services,
    host: str,
    port: int,
    *,
    settings: AMQPSettings | None = None,
    ssl: SSLContext | None = None,
) -> AMQPListener:
    listener = await listen(
        session_factory(context, asyncio.get_running_loop(), settings),
        host,
        port,
        limits=context.limits,
        counts=context.node.stats,
        ssl=ssl,
    )
    return AMQPListener(listener, context)
