"""The MQTT listener: the transport's listener with MQTT sessions."""

from __future__ import annotations

from ssl import SSLContext

from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.transport.glue import Connection
from pigeon.transport.listener import Listener, listen


class MQTTListener:
    """A bound MQTT listener and the connections it accepted."""

    def __init__(self, listener: Listener[MQTTSession]) -> None:
        self.listener = listener

    @property
    def connections(self) -> set[Connection[MQTTSession]]:
        return self.listener.connections

    @property
    def port(self) -> int:
        return self.listener.port

    def close_vhost(self, vhost: str) -> None:
        """A vhost was deleted: its MQTT connections are closed (5.0: 0x98)."""
        for connection in list(self.connections):
            session = connection.session
            if session is not None and session.vhost_name == vhost:
                session.close(ReasonCode.ADMINISTRATIVE_ACTION, will=False)
                connection.close_now()

    async def close(self) -> None:
        await self.listener.close()


async def start_listener(
    context: MQTTContext, host: str, port: int, *, ssl: SSLContext | None = None
) -> MQTTListener:
    services = context.services
    listener = await listen(
        session_factory(context),
        host,
        port,
        limits=services.limits,
        counts=services.node.stats,
        ssl=ssl,
    )
    return MQTTListener(listener)
