"""06: a bad client harms no one else (Mosquitto's test/broker/01-bad-initial-packets idea).

A well-behaved paho subscriber (MQTT 5.0, QoS 1) and an AMQP queue bound to the
same topics keep receiving while a raw client sends, one connection each, every
malformed case of the raw tests: after each one a confirmed AMQP publish must
reach both, and at the end nothing confirmed is missing or repeated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pika
import pytest
from mqtt_raw_client import RawClient, connect_bytes, packet, remaining_length, string
from paho.mqtt.enums import CallbackAPIVersion

from pigeon.broker import Broker
from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5, Will

Raw = Callable[..., RawClient]


def _connect(version: int, flags: int, *payload: bytes) -> bytes:
    header = string(b"MQTT") + bytes([version, flags, 0, 60]) + (b"\x00" if version == 5 else b"")
    return packet(0x10, header + b"".join(string(p) for p in payload))


def _sub(version: int, body: bytes) -> bytes:
    return packet(0x82, b"\x00\x01" + (b"\x00" if version == MQTT_5 else b"") + body)


def _pub(version: int, topic: bytes, flags: int = 0x32, props: bytes = b"") -> bytes:
    pid = b"\x00\x05" if flags & 0x06 else b""
    extra = bytes([len(props)]) + props if version == MQTT_5 else b""
    return packet(flags, string(topic) + pid + extra + b"x")


def _cases() -> Iterator[tuple[str, int, bool, bytes]]:
    """(name, version, CONNECT first, the bytes) for every malformed case of tests 01-05."""
    for v in (MQTT_3_1_1, MQTT_5):
        ok = connect_bytes(v, f"bad-{v}")
        yield "second connect", v, True, ok
        yield "reserved flag", v, False, _connect(v, 0x03, b"bad")
        yield "will qos without will", v, False, _connect(v, 0x0A, b"bad")
        yield "will retain without will", v, False, _connect(v, 0x22, b"bad")
        yield "password without user", v, False, _connect(v, 0x42, b"bad", b"pw")
        yield "empty id, no clean", v, False, _connect(v, 0x00, b"")
        yield "client id too long", v, False, connect_bytes(v, "i" * 5000)
        yield "will topic +", v, False, connect_bytes(v, "bad", will=Will("unharmed/+", b"x"))
        yield "level 6", v, False, packet(0x10, string(b"MQTT") + bytes([6, 2, 0, 9]))
        yield "not a connect", v, False, b"\xc0\x00"
        yield "connect too large", v, False, b"\x10" + remaining_length(100_000)
        yield "no filters", v, True, _sub(v, b"")
        yield "bad options", v, True, _sub(v, string(b"a") + b"\xc1")
        yield "bad filter", v, True, _sub(v, string(b"a/#/b") + b"\x01")
        yield "subscribe flags", v, True, b"\x80" + _sub(v, string(b"a") + b"\x01")[1:]
        yield "wildcard topic", v, True, _pub(v, b"unharmed/+")
        yield "qos 3", v, True, _pub(v, b"a", 0x36)
        yield "dup at qos 0", v, True, _pub(v, b"a", 0x38)
        yield "pubrel unknown", v, True, b"\x62\x02\x00\x07"
        yield "pubrel flags", v, True, b"\x60\x02\x00\x07"
        yield "qos 2 twice", v, True, _pub(v, b"a", 0x34) + _pub(v, b"a", 0x3C)
        yield "oversize", v, True, b"\x30\xff\xff\xff\x7f"
        yield "remaining length 5 bytes", v, True, b"\x30\xff\xff\xff\xff\x01"
        yield "garbage", v, True, b"\xc0\x00\x00\x00\xde\xad"
        yield "auth", v, True, b"\xf0\x00"
        yield "connack from client", v, True, b"\x20\x02\x00\x00"
    yield "alias 0", MQTT_5, True, _pub(MQTT_5, b"a", 0x30, b"\x23\x00\x00")
    yield "alias unset", MQTT_5, True, _pub(MQTT_5, b"", 0x30, b"\x23\x00\x05")


def _run_case(port: int, version: int, connect_first: bool, data: bytes) -> None:
    """Send the case; then a PINGREQ: the connection either answers it or is closed."""
    with RawClient(port, version) as client:
        if connect_first:
            client.connect("bad-client")
        try:
            client.send(data)
            client.send(b"\xc0\x00")
        except OSError:
            return  # closed already
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if client.read_packet(deadline - time.monotonic()) == b"\xd0\x00":
                    return
            except AssertionError as error:
                assert "closed" in str(error), error
                return
        raise AssertionError("neither answered nor closed")


class Subscriber:
    """A paho 5.0 client subscribed at QoS 1, recording payloads."""

    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, "unharmed-sub", protocol=mqtt.MQTTv5)
        client.on_message = self._message
        client.on_subscribe = lambda *a: self.subscribed.set()
        client.on_connect = lambda c, *a: c.subscribe("unharmed/#", qos=1)
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _message(self, client: object, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.payloads.append(message.payload)

    def got(self) -> list[bytes]:
        with self.lock:
            return list(self.payloads)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _fetch(channel: object, queue: str, received: list[bytes]) -> bytes | None:
    """basic_get one message into ``received``; the last one received."""
    method, _, body = channel.basic_get(queue, auto_ack=True)  # type: ignore[attr-defined]
    if method is not None:
        received.append(body)
    return received[-1] if received else None


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        time.sleep(0.01)


@pytest.fixture
def others(broker: Broker) -> Iterator[tuple[Subscriber, pika.adapters.BlockingConnection]]:
    assert broker.mqtt_port is not None
    subscriber = Subscriber(broker.mqtt_port)
    amqp = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        assert subscriber.subscribed.wait(5)
        yield subscriber, amqp
    finally:
        subscriber.stop()
        amqp.close()


def test_every_bad_client_leaves_the_others_receiving(
    broker: Broker, others: tuple[Subscriber, pika.adapters.BlockingConnection]
) -> None:
    assert broker.mqtt_port is not None
    subscriber, amqp = others
    channel = amqp.channel()
    channel.confirm_delivery()  # basic_publish raises if a message is not confirmed
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "unharmed.#")
    received: list[bytes] = []
    cases = list(_cases())
    for number, (name, version, connect_first, data) in enumerate(cases):
        _run_case(broker.mqtt_port, version, connect_first, data)
        body = f"{number} after {name} ({version})".encode()
        channel.basic_publish(
            "amq.topic", "unharmed.n", body, pika.BasicProperties(delivery_mode=2)
        )
        _wait_for(lambda: body in subscriber.got(), f"MQTT subscriber after {name}")  # noqa: B023
        _wait_for(lambda: _fetch(channel, queue, received) == body, f"AMQP after {name}")  # noqa: B023
    expected = [f"{n} after {c[0]} ({c[1]})".encode() for n, c in enumerate(cases)]
    assert received == expected
    assert subscriber.got() == expected  # none lost, none twice
