"""The MQTT listeners: TCP, TLS, WebSocket and secure WebSocket, one session type.

Each is the transport's listener with MQTT sessions, the WebSocket ones with the
session carried inside a :class:`~pigeon.transport.websocket.WebSocketSession`
(path ``/ws``, subprotocol ``mqtt``, as RabbitMQ's Web MQTT). Their connections
are listed alike, each with the MQTT session it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from ssl import SSLContext

from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.transport.glue import Connection
from pigeon.transport.listener import Listener, listen
from pigeon.transport.websocket import WebSocketSession, WebSocketSettings, listen_websocket

WEB_MQTT = WebSocketSettings(path="/ws", subprotocols=("mqtt",))


@dataclass(frozen=True, eq=False)
class MQTTConnection:
    """A live MQTT connection, over TCP or WebSocket: ``session`` is its MQTT session
    (None before it has one: a WebSocket not upgraded yet)."""

    connection: Connection[MQTTSession] | Connection[WebSocketSession[MQTTSession]]

    @property
    def session(self) -> MQTTSession | None:
        session = self.connection.session
        if isinstance(session, WebSocketSession):
            inner: MQTTSession | None = session.inner
            return inner
        return session

    def close_now(self) -> None:
        self.connection.close_now()


class MQTTListener:
    """A bound MQTT listener and the connections it accepted."""

    def __init__(
        self, listener: Listener[MQTTSession] | Listener[WebSocketSession[MQTTSession]]
    ) -> None:
        self.listener = listener

    @property
    def connections(self) -> list[MQTTConnection]:
        return [MQTTConnection(connection) for connection in self.listener.connections]

    @property
    def port(self) -> int:
        return self.listener.port

    def close_vhost(self, vhost: str) -> None:
        """A vhost was deleted: its MQTT connections are closed (5.0: 0x98)."""
        for connection in self.connections:
            session = connection.session
            if session is not None and session.vhost_name == vhost:
                session.close(ReasonCode.ADMINISTRATIVE_ACTION, will=False)
                connection.close_now()

    async def close(self) -> None:
        await self.listener.close()


async def start_listener(
    context: MQTTContext,
    host: str,
    port: int,
    *,
    ssl: SSLContext | None = None,
    websocket: WebSocketSettings | None = None,
) -> MQTTListener:
    """Bind ``host:port`` (0: a free port) for MQTT; ``ssl``: over TLS; ``websocket``:
    inside WebSocket connections (:data:`WEB_MQTT` for RabbitMQ's path and subprotocol)."""
    services = context.services
    if websocket is not None:
        carried = await listen_websocket(
            session_factory(context),
            host,
            port,
            settings=websocket,
            limits=services.limits,
            counts=services.node.stats,
            ssl=ssl,
        )
        return MQTTListener(carried)
    listener = await listen(
        session_factory(context),
        host,
        port,
        limits=services.limits,
        counts=services.node.stats,
        ssl=ssl,
    )
    return MQTTListener(listener)
