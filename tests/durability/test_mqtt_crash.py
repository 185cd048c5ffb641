"""MQTT persistent sessions across kill -9: what the broker confirmed is kept.

- QoS 2 exactly once: a PUBLISH answered with PUBREC, then the broker dies; the
  client comes back, resends the PUBLISH (DUP, as a client that missed the PUBREC
  would) and PUBREL: answered PUBREC and PUBCOMP, the message delivered once.
- QoS 1 and 2 messages confirmed to their publisher (PUBACK / PUBCOMP received)
  reach the persistent subscriber after the restart, none lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from . import mqtt_raw as raw
from .conftest import MakeBroker


def _session(port: int, client_id: str, version: int) -> tuple[raw.RawClient, bool]:
    """A persistent session's connection, and whether CONNACK says the session was kept."""
    client = raw.RawClient(port)
    client.send(raw.connect(client_id, version=version, expiry=3600))
    body = client.expect(raw.CONNACK)
    assert body[1] == 0, f"CONNACK refused: {body!r}"
    return client, bool(body[0] & 1)


def _receive_all(client: raw.RawClient, version: int, until: bytes) -> list[bytes]:
    """Payloads of the PUBLISHes the client gets, each acknowledged, until ``until``."""
    payloads: list[bytes] = []
    while not payloads or payloads[-1] != until:
        kind, flags, body = client.read()
        if kind == raw.PUBREL:
            client.send(raw.ack(raw.PUBCOMP, int.from_bytes(body[:2], "big")))
            continue
        assert kind == raw.PUBLISH, (kind, body)
        _, packet_id, payload = raw.publish_fields(body, flags, version)
        payloads.append(payload)
        qos = (flags >> 1) & 3
        if qos and packet_id is not None:
            client.send(raw.ack(raw.PUBACK if qos == 1 else raw.PUBREC, packet_id))
    return payloads


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("ending", ["kill", "stop"])
def test_a_qos_2_publish_is_routed_once_across_a_crash(
    make_broker: MakeBroker, tmp_path: Path, version: int, ending: str
) -> None:
    broker = make_broker(tmp_path / "data", mqtt=True)
    broker.start()
    sub, _ = _session(broker.mqtt_port, "once-sub", version)
    sub.send(raw.subscribe("exactly/once", 2, version=version))
    sub.expect(raw.SUBACK)
    sub.close()
    pub, _ = _session(broker.mqtt_port, "once-pub", version)
    pub.send(raw.publish("exactly/once", b"once", qos=2, packet_id=7, version=version))
    assert pub.expect(raw.PUBREC)[:2] == b"\x00\x07"
    pub.close()
    broker.kill() if ending == "kill" else broker.stop()

    broker.start()
    pub, present = _session(broker.mqtt_port, "once-pub", version)
    assert present  # the packet id is the session's state [MQTT-4.3.3-10]
    # A resend of the PUBLISH is recognised: answered again, not routed again.
    pub.send(raw.publish("exactly/once", b"once", qos=2, packet_id=7, version=version, dup=True))
    assert pub.expect(raw.PUBREC)[:2] == b"\x00\x07"
    pub.send(raw.ack(raw.PUBREL, 7))
    complete = pub.expect(raw.PUBCOMP)
    assert complete[:2] == b"\x00\x07"
    assert complete[2:3] in (b"", b"\x00")  # success, not 0x92 (packet id not found)
    pub.send(raw.publish("exactly/once", b"marker", qos=1, packet_id=8, version=version))
    pub.expect(raw.PUBACK)
    sub, present = _session(broker.mqtt_port, "once-sub", version)
    assert present
    assert _receive_all(sub, version, b"marker") == [b"once", b"marker"]
    sub.close()
    pub.close()


def test_a_qos_2_delivery_waiting_for_pubcomp_is_released_after_a_crash(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    """Outbound QoS 2: the subscriber sent PUBREC, the broker died before PUBCOMP came;
    back, the broker sends PUBREL for that packet id [MQTT-4.4.0-1], not the message."""
    broker = make_broker(tmp_path / "data", mqtt=True)
    broker.start()
    sub, _ = _session(broker.mqtt_port, "rel-sub", 5)
    sub.send(raw.subscribe("released/#", 2, version=5))
    sub.expect(raw.SUBACK)
    pub, _ = _session(broker.mqtt_port, "rel-pub", 5)
    pub.send(raw.publish("released/a", b"one", qos=2, packet_id=1, version=5))
    pub.expect(raw.PUBREC)
    pub.send(raw.ack(raw.PUBREL, 1))
    pub.expect(raw.PUBCOMP)
    kind, flags, body = sub.read()
    assert kind == raw.PUBLISH
    _, packet_id, payload = raw.publish_fields(body, flags, 5)
    assert payload == b"one" and packet_id is not None
    sub.send(raw.ack(raw.PUBREC, packet_id))
    assert sub.expect(raw.PUBREL)[:2] == packet_id.to_bytes(2, "big")
    # (the PUBREC's acknowledgement is on disk once a later confirmed publish is)
    pub.send(raw.publish("elsewhere", b"sync", qos=1, packet_id=2, version=5))
    pub.expect(raw.PUBACK)
    sub.close()
    pub.close()
    broker.kill()

    broker.start()
    sub, present = _session(broker.mqtt_port, "rel-sub", 5)
    assert present
    assert sub.expect(raw.PUBREL)[:2] == packet_id.to_bytes(2, "big")
    sub.send(raw.ack(raw.PUBCOMP, packet_id))
    pub, _ = _session(broker.mqtt_port, "rel-pub", 5)
    pub.send(raw.publish("released/a", b"two", qos=1, packet_id=3, version=5))
    pub.expect(raw.PUBACK)
    assert _receive_all(sub, 5, b"two") == [b"two"]  # "one" is not delivered again
    sub.close()
    pub.close()


class _Publisher:
    """A paho publisher that records which of its messages the broker confirmed."""

    def __init__(self, port: int, version: int, client_id: str) -> None:
        self.confirmed: set[int] = set()
        self.lock = threading.Lock()
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
        )
        self.paho.max_inflight_messages_set(50)
        self.paho.max_queued_messages_set(0)
        self.paho.on_publish = self._on_publish
        self.paho.connect("127.0.0.1", port)
        self.paho.loop_start()

    def _on_publish(self, client: object, userdata: object, mid: int, *rest: object) -> None:
        with self.lock:
            self.confirmed.add(mid)

    def count(self) -> int:
        with self.lock:
            return len(self.confirmed)

    def stop(self) -> None:
        self.paho.loop_stop()
        self.paho.reinitialise()


def _wait(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _confirmed_messages_survive(make_broker: MakeBroker, data: Path, cycles: int) -> None:
    broker = make_broker(data, mqtt=True)
    broker.start()
    sub, _ = _session(broker.mqtt_port, "survivor", 4)
    sub.send(raw.subscribe("crash/#", 2))
    sub.expect(raw.SUBACK)
    sub.close()
    confirmed: list[bytes] = []
    for cycle in range(cycles):
        version = 5 if cycle % 2 else 4
        publisher = _Publisher(broker.mqtt_port, version, f"crash-pub-{cycle}")
        payloads: dict[int, bytes] = {}
        for n in range(400):
            payload = f"{cycle}-{n}".encode()
            info = publisher.paho.publish(f"crash/{cycle}", payload, qos=1 + n % 2)
            payloads[info.mid] = payload
        _wait(lambda publisher=publisher: publisher.count() >= 40)  # type: ignore[misc]
        broker.kill()  # while the rest are in flight
        publisher.stop()
        confirmed += [payloads[mid] for mid in publisher.confirmed]
        assert not broker.crash_warnings(broker.run_start)
        broker.start()
    pub, _ = _session(broker.mqtt_port, "crash-marker", 4)
    pub.send(raw.publish("crash/end", b"end", qos=1, packet_id=1))
    pub.expect(raw.PUBACK)
    sub, present = _session(broker.mqtt_port, "survivor", 4)
    assert present
    received = _receive_all(sub, 4, b"end")
    missing = set(confirmed) - set(received)
    assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
    sub.close()
    pub.close()


def test_confirmed_qos_1_and_2_messages_survive_kill_9(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    _confirmed_messages_survive(make_broker, tmp_path / "data", cycles=2)


@pytest.mark.slow
def test_confirmed_qos_1_and_2_messages_survive_many_kill_9(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    _confirmed_messages_survive(make_broker, tmp_path / "data", cycles=8)
