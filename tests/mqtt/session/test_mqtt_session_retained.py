"""Retained messages through the session: kept per topic, sent to new subscriptions with
RETAIN=1, cleared by an empty payload; RETAIN=0 on live deliveries unless Retain As
Published."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mqtt_session_clients import Client, wait_for
from paho.mqtt.subscribeoptions import SubscribeOptions


@pytest.mark.parametrize("version", [4, 5])
def test_a_new_subscription_gets_the_retained_message(
    clients: Callable[..., Client], version: int
) -> None:
    pub = clients(version)
    pub.connect()
    pub.paho.publish(f"ret{version}/door", b"open", qos=1, retain=True).wait_for_publish(5)
    sub = clients(version)
    sub.connect()
    sub.subscribe(f"ret{version}/+", 1)
    (message,) = sub.received()
    assert (message.topic, message.payload, message.retain, message.qos) == (
        f"ret{version}/door",
        b"open",
        True,
        1,
    )
    pub.paho.publish(f"ret{version}/door", b"closed", qos=1, retain=True).wait_for_publish(5)
    live = sub.received(2)[1]
    assert (live.payload, live.retain) == (b"closed", False)  # [MQTT-3.3.1-12]


def test_an_empty_retained_payload_clears_the_topic(clients: Callable[..., Client]) -> None:
    pub = clients(5)
    pub.connect()
    pub.paho.publish("clear/me", b"x", qos=1, retain=True).wait_for_publish(5)
    pub.paho.publish("clear/me", b"", qos=1, retain=True).wait_for_publish(5)
    sub = clients(5)
    sub.connect()
    sub.subscribe("clear/#", 1)
    with pytest.raises(AssertionError):
        sub.received(timeout=0.5)


def test_retain_as_published_keeps_the_flag(clients: Callable[..., Client]) -> None:
    sub = clients(5)
    sub.connect()
    before = len(sub.subacks)
    sub.paho.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=True))
    wait_for(lambda: len(sub.subacks) > before)
    pub = clients(5)
    pub.connect()
    pub.paho.publish("rap/t", b"kept", qos=1, retain=True).wait_for_publish(5)
    (message,) = sub.received()
    assert message.retain
