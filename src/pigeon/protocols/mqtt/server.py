"""The MQTT listeners: TCP, TLS, WebSocket and secure WebSocket, one session type.

Each is the transport's listener with MQTT sessions, the WebSocket ones with the
session carried inside a :class:`~pigeon.transport.websocket.WebSocketSession`
(path ``/ws``, subprotocol ``mqtt``, as RabbitMQ's Web MQTT). Their connections
are listed alike, each with the MQTT session it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ssl import SSLContext

from pigeon.protocols.mqtt import counting
from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.transport.glue import Connection, Tuning
from pigeon.transport.listener import Listener, listen
from pigeon.transport.websocket import WebSocketSession, WebSocketSettings, listen_websocket

log = logging.getLogger("pigeon.mqtt")

WEB_MQTT = WebSocketSettings(path="/ws", subprotocols=("mqtt",))

# The MQTT listeners by URL scheme: (over TLS, over WebSocket, as logged).
SCHEMES = {
    "mqtt": (False, False, "MQTT"),
    "mqtts": (True, False, "MQTT over TLS"),
    "ws": (False, True, "MQTT over WebSocket"),
    "wss": (True, True, "MQTT over secure WebSocket"),
}


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
            counts=counting.ListenerCounts(services.node.stats),
            ssl=ssl,
            tuning=tuning(context),
        )
        return MQTTListener(carried)
    listener = await listen(
        session_factory(context),
        host,
        port,
        limits=services.limits,
        counts=counting.ListenerCounts(services.node.stats),
        ssl=ssl,
        tuning=tuning(context),
    )
    return MQTTListener(listener)


class MQTTListeners:
    """A broker's MQTT listeners, by scheme (``mqtt``, ``mqtts``, ``ws``, ``wss``)."""

    def __init__(self) -> None:
        self.by_scheme: dict[str, MQTTListener] = {}

    async def start(
        self,
        context: MQTTContext,
        host: str,
        ports: Mapping[str, int],
        *,
        ssl: SSLContext | None,
        on_vhost_deleted: Callable[[Callable[[str], None]], None],
    ) -> None:
        """Bind one listener per scheme in ``ports`` (0: a free port); the TLS ones with
        ``ssl``. ``on_vhost_deleted`` registers each listener's :meth:`close_vhost`."""
        for scheme, port in ports.items():
            tls, websocket, label = SCHEMES[scheme]
            listener = await start_listener(
                context,
                host,
                port,
                ssl=ssl if tls else None,
                websocket=WEB_MQTT if websocket else None,
            )
            self.by_scheme[scheme] = listener
            on_vhost_deleted(listener.close_vhost)
            path = WEB_MQTT.path if websocket else ""
            log.info("%s listening on %s:%d%s", label, host, listener.port, path)

    def port(self, scheme: str) -> int | None:
        listener = self.by_scheme.get(scheme)
        return listener.port if listener is not None else None

    def url(self, scheme: str, host: str) -> str | None:
        """``scheme://host:port`` (``/ws`` for WebSocket); None: not listening."""
        listener = self.by_scheme.get(scheme)
        if listener is None:
            return None
        path = WEB_MQTT.path if SCHEMES[scheme][1] else ""
        return f"{scheme}://{host}:{listener.port}{path}"

    @property
    def connections(self) -> list[MQTTConnection]:
        return [c for listener in self.by_scheme.values() for c in listener.connections]

    async def close(self) -> None:
        listeners, self.by_scheme = self.by_scheme, {}
        for listener in reversed(listeners.values()):
            await listener.close()


def tuning(context: MQTTContext) -> Tuning:
    """The transport's tuning for MQTT connections: the connect timeout as its handshake's."""
    return Tuning(handshake_timeout=context.settings.connect_timeout)
