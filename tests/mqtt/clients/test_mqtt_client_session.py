"""Sessions: clean session (3.1.1), clean start and session expiry (5.0), messages queued
while the client is away, message expiry, and receive maximum."""

from __future__ import annotations

import time

import pytest
from mqtt_client_kit import barrier


def _offline_subscriber(client, topic: str, *, v5: bool, expiry: int | None = None):
    """Connects a session that keeps its state, subscribes at QoS 1 and goes away."""
    sub = client("sub", v5=v5, clean=False)
    if v5:
        sub.connect(SessionExpiryInterval=expiry if expiry is not None else 60)
    else:
        sub.connect()
    sub.subscribe(topic, qos=1)
    sub.disconnect()
    return sub


def test_clean_session_false_keeps_subscriptions_and_queues_messages(client, names) -> None:
    """3.1.1 [MQTT-3.1.2-4], [MQTT-3.1.2-5]: QoS 1 messages published while the session's
    client is away are delivered, in order, when it comes back (session present 1)."""
    topic = names.topic("s")
    _offline_subscriber(client, topic, v5=False)
    pub = client("pub", v5=False)
    pub.connect()
    for i in range(3):
        pub.publish(topic, f"m{i}".encode(), qos=1)
    back = client("sub", v5=False, clean=False)
    assert back.connect().session_present is True
    assert [m.payload for m in back.expect(3)] == [b"m0", b"m1", b"m2"]
    back.disconnect()
    client("sub", v5=False, clean=True).connect()  # end the stored session


def test_clean_session_true_discards_the_session(client, names) -> None:
    """3.1.1 [MQTT-3.1.2-6]: clean session 1 starts afresh: nothing queued, no
    subscription, session present 0 ([MQTT-3.2.2-1])."""
    topic = names.topic("s")
    _offline_subscriber(client, topic, v5=False)
    pub = client("pub", v5=False)
    pub.connect()
    pub.publish(topic, b"lost", qos=1)
    fresh = client("sub", v5=False, clean=True)
    assert fresh.connect().session_present is False
    fresh.subscribe(names.topic("other"), qos=1)
    assert barrier(fresh, names.topic("other")) == []
    pub.publish(topic, b"not subscribed", qos=1)
    assert barrier(fresh, names.topic("other")) == []


@pytest.mark.parametrize("qos", [1, 2])
def test_clean_start_false_resumes_the_session(client, names, qos: int) -> None:
    """5.0: clean start 0 and a session expiry interval: the session, its subscription
    and its queued QoS 1 / QoS 2 messages outlive the connection."""
    topic = names.topic("s")
    sub = client("sub", clean=False)
    sub.connect(SessionExpiryInterval=60)
    sub.subscribe(topic, qos=qos)
    sub.disconnect()
    pub = client("pub")
    pub.connect()
    for i in range(3):
        pub.publish(topic, f"queued {i}", qos=qos)
    back = client("sub", clean=False)
    assert back.connect(SessionExpiryInterval=60).session_present is True
    got = back.expect(3)
    assert [(m.payload, m.qos) for m in got] == [(f"queued {i}".encode(), qos) for i in range(3)]
    assert barrier(back, topic) == []
    back.disconnect(SessionExpiryInterval=0)


def test_clean_start_true_discards_the_session(client, names) -> None:
    topic = names.topic("s")
    _offline_subscriber(client, topic, v5=True, expiry=60)
    fresh = client("sub", clean=True)
    assert fresh.connect().session_present is False


def test_session_expiry_zero_ends_the_session_at_disconnect(client, names) -> None:
    """5.0 §3.1.2.11.2: no Session Expiry Interval means 0: the session ends with the
    network connection."""
    topic = names.topic("s")
    sub = client("sub", clean=False)
    sub.connect()
    sub.subscribe(topic, qos=1)
    sub.disconnect()
    back = client("sub", clean=False)
    assert back.connect().session_present is False


def test_session_is_gone_after_its_expiry(client, names) -> None:
    """5.0 [MQTT-4.1.0-2]: a session with expiry 1 s is discarded after it; a reconnect
    then finds no session and no queued messages."""
    topic = names.topic("s")
    _offline_subscriber(client, topic, v5=True, expiry=1)
    time.sleep(2.5)  # the time that passes is the test: past the session expiry
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"nobody home", qos=1)
    back = client("sub", clean=False)
    assert back.connect(SessionExpiryInterval=0).session_present is False
    back.subscribe(names.topic("other"), qos=1)
    assert barrier(back, names.topic("other")) == []


def test_expired_message_is_never_delivered(client, names) -> None:
    """5.0 [MQTT-3.3.2-5]: a message whose expiry interval passes while it is queued for
    an offline session is not delivered; one without expiry is."""
    topic = names.topic("s")
    _offline_subscriber(client, topic, v5=True, expiry=60)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"short-lived", qos=1, MessageExpiryInterval=1)
    pub.publish(topic, b"lasting", qos=1)
    time.sleep(2.2)  # the time that passes is the test: past the message's expiry
    back = client("sub", clean=False)
    assert back.connect(SessionExpiryInterval=60).session_present is True
    (m,) = back.expect(1)
    assert m.payload == b"lasting"
    assert barrier(back, topic) == []
    back.disconnect(SessionExpiryInterval=0)


def test_remaining_expiry_interval_on_delivery(client, names) -> None:
    """5.0 [MQTT-3.3.2-6]: the delivered Message Expiry Interval is what is left of it."""
    topic = names.topic("s")
    _offline_subscriber(client, topic, v5=True, expiry=60)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"ageing", qos=1, MessageExpiryInterval=30)
    time.sleep(2.1)  # the time that passes is the test: the message ages while queued
    back = client("sub", clean=False)
    back.connect(SessionExpiryInterval=60)
    (m,) = back.expect(1)
    assert m.payload == b"ageing"
    assert 25 <= m.prop("MessageExpiryInterval") <= 28
    back.disconnect(SessionExpiryInterval=0)


def test_receive_maximum_limits_unacknowledged_deliveries(client, names) -> None:
    """5.0 [MQTT-3.3.4-9]: the broker never has more unacknowledged QoS 1 deliveries in
    flight than the client's Receive Maximum (2); acking lets the rest through, all 10
    arrive in order."""
    topic = names.topic("rm")
    sub = client("sub", manual_ack=True)
    sub.connect(ReceiveMaximum=2)
    sub.subscribe(topic, qos=1)
    pub = client("pub")
    pub.connect()
    for i in range(10):
        pub.publish(topic, str(i).encode(), qos=1)
    inflight = sub.expect(2)
    # The publisher's PUBACKs are in, and one more round trip through the broker: what
    # the broker would send beyond the limit has been sent by now.
    barrier_on_other_topic(client, names)
    assert sub.pending() == [], "more than Receive Maximum unacknowledged deliveries"
    delivered = list(inflight)
    while len(delivered) < 10:
        oldest = inflight.pop(0)
        sub.paho.ack(oldest.mid, 1)
        (m,) = sub.expect(1)  # one ack frees one slot
        inflight.append(m)
        delivered.append(m)
    barrier_on_other_topic(client, names)
    assert sub.pending() == []
    assert [int(m.payload) for m in delivered] == list(range(10))


def barrier_on_other_topic(client, names) -> None:
    """A round trip through the broker on an unrelated topic: when it returns, the broker
    has handled every packet sent to it before."""
    probe = client("probe")
    probe.connect()
    probe.subscribe(names.topic("probe"), qos=1)
    barrier(probe, names.topic("probe"))
    probe.disconnect()
