"""A bounded session queue (``mqtt_max_queued``) filled while its persistent session is
offline: drop-head keeps the newest, reject-publish refuses the rest (5.0: 0x97)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mqtt_session_clients import Client, wait_for
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pigeon.broker import Broker
from pigeon.config import Config


@pytest.fixture(params=["drop-head", "reject-publish"])
def bounded(request: pytest.FixtureRequest) -> Iterator[tuple[Broker, str]]:
    config = Config(
        port=0,
        mqtt_port=0,
        data_dir=None,
        management_port=None,
        mqtt_max_queued=3,
        mqtt_queue_overflow=request.param,
    )
    with Broker.in_thread(config) as running:
        yield running, request.param


def _persistent(port: int, client_id: str) -> Client:
    client = Client(port, 5, client_id)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(clean_start=False, properties=props)
    return client


def test_an_offline_session_keeps_at_most_max_queued(bounded: tuple[Broker, str]) -> None:
    broker, overflow = bounded
    assert broker.mqtt_port is not None
    sub = _persistent(broker.mqtt_port, "bounded-sub")
    sub.subscribe("bounded/#", 1)
    sub.stop()
    pub = Client(broker.mqtt_port, 5)
    answers: dict[int, Any] = {}
    pub.paho.on_publish = lambda c, u, mid, reason, props: answers.__setitem__(mid, reason)
    pub.connect()
    mids = [pub.paho.publish("bounded/x", f"m{n}".encode(), qos=1).mid for n in range(5)]
    wait_for(lambda: len(answers) == 5)
    codes = [answers[mid].value for mid in mids]
    back = _persistent(broker.mqtt_port, "bounded-sub")
    try:
        got = [m.payload for m in back.received(3)]
        pub.paho.publish("bounded/x", b"end", qos=1).wait_for_publish(5)
        wait_for(lambda: back.messages[-1].payload == b"end")
        got = [m.payload for m in back.messages]
    finally:
        back.stop()
        pub.stop()
    if overflow == "drop-head":
        assert codes == [0] * 5
        assert got == [b"m2", b"m3", b"m4", b"end"]  # the oldest went
    else:
        assert codes == [0, 0, 0, 0x97, 0x97]  # Quota exceeded
        assert got == [b"m0", b"m1", b"m2", b"end"]
