"""What the MQTT client tests share: the target, a paho-mqtt client that records what it
sees (CONNACK, SUBACK, messages, DISCONNECT), and raw CONNECT packets for the cases no
client library will send."""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 10.0


@dataclass(frozen=True)
class MqttTarget:
    name: str
    host: str
    port: int
    username: str | None
    password: str | None
    ws_port: int | None
    ws_path: str
    mosquitto: bool = False


def wait_until(check: Callable[[], bool], timeout: float = TIMEOUT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.01)


def props(packet: int, **values: Any) -> Properties:
    """``props(PacketTypes.PUBLISH, UserProperty=[...], ...)``."""
    p = Properties(packet)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def publish_props(**values: Any) -> Properties:
    return props(PacketTypes.PUBLISH, **values)


@dataclass
class Connack:
    reason: ReasonCode
    session_present: bool
    properties: Any

    @property
    def value(self) -> int:
        return int(self.reason.value)

    def prop(self, name: str, default: Any = None) -> Any:
        return getattr(self.properties, name, default) if self.properties else default


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    properties: Any
    at: float = field(default_factory=time.monotonic)

    def prop(self, name: str, default: Any = None) -> Any:
        return getattr(self.properties, name, default) if self.properties else default


class Client:
    """A paho-mqtt client on its own network thread that records what the broker sends."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        *,
        v5: bool = True,
        clean: bool = True,
        manual_ack: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.target = target
        self.v5 = v5
        self.clean = clean
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=manual_ack,
            # 3.1.1's clean session is a constructor argument in paho; 5.0's is connect's
            clean_session=None if v5 else clean,
        )
        if credentials is None and target.username is not None:
            credentials = (target.username, target.password or "")
        if credentials is not None:
            self.paho.username_pw_set(*credentials)
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connacks: queue.Queue[Connack] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.disconnects: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.acked: dict[int, ReasonCode] = {}
        self.connected = threading.Event()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_publish = self._on_publish

    # -- callbacks (paho's network thread) -------------------------------------------------
    def _on_connect(
        self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self.connacks.put(Connack(reason, bool(flags.session_present), properties))
        if not reason.is_failure:
            self.connected.set()

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        self.messages.put(
            Received(
                m.topic, m.payload, m.qos, bool(m.retain), m.mid, getattr(m, "properties", None)
            )
        )

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self.subacks.put(list(codes))

    def _on_disconnect(
        self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self.connected.clear()
        self.disconnects.put((int(reason.value), properties))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self.acked[mid] = reason

    # -- actions -----------------------------------------------------------------------------
    def connect(
        self,
        *,
        keepalive: int = 60,
        properties: Properties | None = None,
        expect_ok: bool = True,
        **connect_props: Any,
    ) -> Connack:
        if connect_props:
            properties = props(PacketTypes.CONNECT, **connect_props)
        if self.v5:
            self.paho.connect(
                self.target.host,
                self.target.port,
                keepalive,
                clean_start=self.clean,
                properties=properties,
            )
        else:
            self.paho.connect(self.target.host, self.target.port, keepalive)
        self.paho.loop_start()
        connack = self.connacks.get(timeout=TIMEOUT)
        if expect_ok:
            assert not connack.reason.is_failure, f"CONNACK {connack.reason}"
        return connack

    def will(self, topic: str, payload: bytes, qos: int = 1, **will_props: Any) -> None:
        p = props(PacketTypes.WILLMESSAGE, **will_props) if will_props else None
        self.paho.will_set(topic, payload, qos=qos, properties=p)

    def subscribe(
        self,
        topic: str,
        qos: int = 1,
        *,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        **sub_props: Any,
    ) -> list[int]:
        if self.v5:
            options = SubscribeOptions(qos, no_local, retain_as_published, retain_handling)
            p = props(PacketTypes.SUBSCRIBE, **sub_props) if sub_props else None
            self.paho.subscribe(topic, options=options, properties=p)
        else:
            self.paho.subscribe(topic, qos)
        return [int(c.value) for c in self.subacks.get(timeout=TIMEOUT)]

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
        **publish_values: Any,
    ) -> int:
        """Publishes and, for QoS 1 and 2, waits for the broker's PUBACK / PUBCOMP;
        returns the reason code of that acknowledgement (0 for QoS 0)."""
        if publish_values:
            properties = publish_props(**publish_values)
        info = self.paho.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish: {mqtt.error_string(info.rc)}"
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), "the broker did not acknowledge the publish"
        if qos == 0:
            return 0
        wait_until(lambda: info.mid in self.acked, what="the acknowledgement's callback")
        return int(self.acked[info.mid].value)

    def expect(self, count: int, timeout: float = TIMEOUT) -> list[Received]:
        """The next ``count`` messages; fails when they do not arrive in time."""
        out = []
        deadline = time.monotonic() + timeout
        for _ in range(count):
            left = max(0.0, deadline - time.monotonic())
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                raise AssertionError(
                    f"got {len(out)} of {count} messages: {[m.payload for m in out]}"
                ) from None
        return out

    def pending(self) -> list[Received]:
        """Messages received and not yet taken by ``expect``."""
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def disconnect(self, **disconnect_props: Any) -> None:
        p = props(PacketTypes.DISCONNECT, **disconnect_props) if disconnect_props else None
        self.paho.disconnect(properties=p)
        self.paho.loop_stop()

    def drop(self) -> None:
        """Closes the TCP connection without DISCONNECT (a network failure to the broker)."""
        sock = self.paho.socket()
        self.paho.loop_stop()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        """Best-effort cleanup for a fixture: disconnect if still connected."""
        if self.connected.is_set():
            self.disconnect()
        else:
            self.paho.loop_stop()


def barrier(client: Client, topic: str, payload: bytes = b"barrier") -> list[Received]:
    """Publishes a marker to ``topic`` (which ``client`` subscribes to) and returns every
    message received before it: what the broker delivered ahead of the marker."""
    client.publish(topic, payload, qos=1)
    seen: list[Received] = []
    while True:
        (m,) = client.expect(1)
        if m.topic == topic and m.payload == payload:
            return seen
        seen.append(m)


def drain(clients: list[Client], total: int, timeout: float = TIMEOUT) -> list[list[Received]]:
    """What each of ``clients`` receives until ``total`` messages have arrived in all."""
    got: list[list[Received]] = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < total:
        assert time.monotonic() < deadline, f"got {sum(map(len, got))} of {total} messages"
        for i, c in enumerate(clients):
            with contextlib.suppress(queue.Empty):
                got[i].append(c.messages.get(timeout=0.01))
    return got


def clear_retained(target: MqttTarget, topic: str) -> None:
    c = Client(target, f"cleanup-{time.monotonic_ns()}")
    c.connect()
    c.publish(topic, b"", qos=1, retain=True)
    c.disconnect()


def is_mosquitto(target: MqttTarget) -> bool:
    """Mosquitto publishes its version, retained, on ``$SYS/broker/version``."""
    c = Client(target, f"probe-{time.monotonic_ns()}")
    c.connect()
    try:
        c.subscribe("$SYS/broker/version", qos=0)
        try:
            m = c.messages.get(timeout=1.0)
        except queue.Empty:
            return False
        return m.payload.startswith(b"mosquitto")
    finally:
        c.disconnect()


# -- raw packets -----------------------------------------------------------------------------
def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(
    client_id: str, *, level: int = 4, keepalive: int = 60, clean: bool = True
) -> bytes:
    """A CONNECT packet: protocol name MQTT, the given protocol level (4 = 3.1.1, 5 = 5.0)."""
    body = _string(b"MQTT") + bytes([level, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
    if level == 5:
        body += b"\x00"  # no properties
    body += _string(client_id.encode())
    return b"\x10" + _varint(len(body)) + body


def subscribe_packet(packet_id: int, topic_filter: str, qos: int) -> bytes:
    """A 3.1.1 SUBSCRIBE with one filter."""
    body = struct.pack("!H", packet_id) + _string(topic_filter.encode()) + bytes([qos])
    return b"\x82" + _varint(len(body)) + body


def raw_connect(target: MqttTarget, packet: bytes) -> tuple[socket.socket, bytes]:
    """Sends ``packet`` on a new connection; returns the socket and the first bytes back."""
    sock = socket.create_connection((target.host, target.port), timeout=TIMEOUT)
    sock.sendall(packet)
    return sock, sock.recv(64)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the broker sends until it closes the connection (fails on timeout)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"the broker kept the connection open for {timeout}s") from None
        if not chunk:
            return data
        data += chunk
