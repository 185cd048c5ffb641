"""Retained messages: set, replace, clear, delivered on subscribe with the retain flag;
5.0's retain handling and retain-as-published."""

from __future__ import annotations

import pytest
from mqtt_client_kit import barrier


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_retained_message_is_delivered_on_subscribe(
    client, names, cleanup_retained, v5: bool
) -> None:
    """[MQTT-3.3.1-6], [MQTT-3.3.1-8]: a new subscription gets the retained message with
    the retain flag set; a later retained publish replaces it ([MQTT-3.3.1-5])."""
    topic = names.topic("r")
    cleanup_retained(topic)
    pub = client("pub", v5=v5)
    pub.connect()
    pub.publish(topic, b"first", qos=1, retain=True)
    pub.publish(topic, b"second", qos=1, retain=True)
    sub = client("sub", v5=v5)
    sub.connect()
    sub.subscribe(topic, qos=1)
    (m,) = sub.expect(1)
    assert (m.payload, m.retain, m.qos) == (b"second", True, 1)
    # A live publish to an existing subscription carries retain 0 ([MQTT-3.3.1-9]).
    pub.publish(topic, b"live", qos=1, retain=True)
    (m,) = sub.expect(1)
    assert (m.payload, m.retain) == (b"live", False)


def test_retained_qos_is_the_lower_of_stored_and_subscription(
    client, names, cleanup_retained
) -> None:
    topic = names.topic("r")
    cleanup_retained(topic)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"stored at 2", qos=2, retain=True)
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1)
    (m,) = sub.expect(1)
    assert (m.payload, m.qos, m.retain) == (b"stored at 2", 1, True)


def test_empty_retained_publish_clears_it(client, names) -> None:
    """[MQTT-3.3.1-10], [MQTT-3.3.1-11]: an empty retained payload removes the retained
    message; it is delivered to current subscribers but not stored."""
    topic = names.topic("r")
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"to be cleared", qos=1, retain=True)
    pub.publish(topic, b"", qos=1, retain=True)
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1)
    assert barrier(sub, topic) == []


def test_retained_messages_of_a_wildcard_subscription(client, names, cleanup_retained) -> None:
    topics = [names.topic("w", x) for x in ("a", "b", "c/d")]
    for topic in topics:
        cleanup_retained(topic)
    pub = client("pub")
    pub.connect()
    for topic in topics:
        pub.publish(topic, topic.encode(), qos=1, retain=True)
    sub = client("sub")
    sub.connect()
    sub.subscribe(names.topic("w", "+"), qos=1)
    got = sub.expect(2)
    assert sorted(m.topic for m in got) == sorted(topics[:2])
    assert all(m.retain for m in got)
    sub.subscribe(names.topic("w", "#"), qos=1)
    got = sub.expect(3)
    assert sorted(m.topic for m in got) == sorted(topics)


@pytest.mark.parametrize(
    ("handling", "first", "second"),
    [(0, 1, 1), (1, 1, 0), (2, 0, 0)],
    ids=["0-always", "1-new-subscription-only", "2-never"],
)
def test_retain_handling(
    client, names, cleanup_retained, handling: int, first: int, second: int
) -> None:
    """5.0 §3.8.3.1 [MQTT-3.3.1-9..11]: retained messages on subscribe: 0 always, 1 only
    when the subscription is new, 2 never. Counted on a first and a repeated SUBSCRIBE."""
    topic = names.topic("rh")
    cleanup_retained(topic)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"kept", qos=1, retain=True)
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1, retain_handling=handling)
    assert len([m for m in barrier(sub, topic) if m.retain]) == first
    sub.subscribe(topic, qos=1, retain_handling=handling)
    assert len([m for m in barrier(sub, topic) if m.retain]) == second


@pytest.mark.parametrize("rap", [False, True], ids=["rap0", "rap1"])
def test_retain_as_published(client, names, cleanup_retained, rap: bool) -> None:
    """5.0 [MQTT-3.3.1-12], [MQTT-3.3.1-13]: a live retained publish reaches a subscription
    with retain-as-published 1 with the flag as published, otherwise with retain 0."""
    topic = names.topic("rap")
    cleanup_retained(topic)
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1, retain_as_published=rap)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"retained", qos=1, retain=True)
    pub.publish(topic, b"plain", qos=1, retain=False)
    got = sub.expect(2)
    assert [(m.payload, m.retain) for m in got] == [(b"retained", rap), (b"plain", False)]
