"""A paho-mqtt client for the management tests of MQTT sessions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def poll(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Paho:
    """One paho client on its network thread; records CONNACK, messages and DISCONNECT."""

    def __init__(self, port: int, client_id: str, version: int = 5, **kw: Any) -> None:
        self.port = port
        self.client_id = client_id
        self.version = version
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
            clean_session=kw.pop("clean_session", True) if version != 5 else None,
            manual_ack=kw.pop("manual_ack", False),
            transport="websockets" if kw.get("websocket") else "tcp",
        )
        if kw.pop("websocket", False):
            self.paho.ws_set_options(path="/ws")
        self.connack: Any = None
        self.disconnected: Any = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks = 0
        self.paho.on_connect = lambda c, u, f, reason, p: setattr(self, "connack", reason)
        self.paho.on_message = lambda c, u, m: self.messages.append(m)
        self.paho.on_disconnect = lambda c, u, f, reason, p: setattr(self, "disconnected", reason)
        self.paho.on_subscribe = lambda c, u, mid, codes, p: setattr(self, "subacks", mid)

    def connect(self, *, keepalive: int = 60, expiry: int | None = None, clean: bool = True) -> Any:
        properties = None
        if self.version == 5 and expiry is not None:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = expiry
        kw: dict[str, Any] = {"properties": properties}
        if self.version == 5:
            kw["clean_start"] = clean
        self.paho.connect("127.0.0.1", self.port, keepalive=keepalive, **kw)
        self.paho.loop_start()
        poll(lambda: self.connack is not None)
        return self.connack

    def subscribe(self, topic: str, qos: int = 1) -> None:
        _, mid = self.paho.subscribe(topic, qos)
        poll(lambda: self.subacks == mid)

    def stop(self) -> None:
        """Disconnect, stop the network thread, close paho's sockets (``reinitialise``
        closes its wake-up socket pair too)."""
        self.paho.disconnect()
        self.paho.loop_stop()
        self.paho.reinitialise(client_id=self.client_id)
