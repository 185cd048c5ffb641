"""A small paho-mqtt client for the session tests, and polling with a deadline."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


class Client:
    """A paho client on its own network thread, recording what it receives."""

    def __init__(self, port: int, version: int, client_id: str | None = None, **kw: Any) -> None:
        self.client_id = client_id if client_id is not None else f"c-{uuid.uuid4().hex[:10]}"
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            clean_session=kw.pop("clean_session", None) if version != 5 else None,
            transport=kw.pop("transport", "tcp"),  # "websockets": also ws_set_options(path)
        )
        self.port = port
        self.version = version
        self.messages: list[mqtt.MQTTMessage] = []
        self.connack: Any = None
        self.connack_properties: Any = None  # 5.0's CONNACK properties
        self.disconnected: Any = None
        self.subacks: list[Any] = []
        self.lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = lambda c, u, m: self.messages.append(m)
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_subscribe = lambda c, u, mid, codes, p: self.subacks.append(codes)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack_properties = props
        self.connack = (flags, reason)

    def _on_disconnect(self, client: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.disconnected = reason

    def connect(self, **kw: Any) -> Any:
        self.paho.connect("127.0.0.1", self.port, keepalive=kw.pop("keepalive", 60), **kw)
        self.paho.loop_start()
        wait_for(lambda: self.connack is not None)
        return self.connack[1]

    def subscribe(self, topic: str, qos: int = 0) -> Any:
        before = len(self.subacks)
        self.paho.subscribe(topic, qos)
        wait_for(lambda: len(self.subacks) > before)
        return self.subacks[-1]

    def received(self, count: int = 1, timeout: float = 5.0) -> list[mqtt.MQTTMessage]:
        wait_for(lambda: len(self.messages) >= count, timeout)
        return self.messages

    def drop(self) -> None:
        """End the connection without DISCONNECT, as a lost network would."""
        self.paho.loop_stop()
        sock = self.paho.socket()
        if sock is not None:
            sock.close()
        self.paho.reinitialise(client_id=self.client_id)

    def stop(self) -> None:
        """Disconnect, stop the network thread and close paho's sockets (its wake-up
        socket pair too: ``reinitialise`` is paho's public way to close them)."""
        self.paho.disconnect()
        self.paho.loop_stop()
        self.paho.reinitialise(client_id=self.client_id)
