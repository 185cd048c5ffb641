"""Will messages: published when the network connection fails, not after DISCONNECT;
5.0's will delay interval and will properties."""

from __future__ import annotations

import time

import pytest
from mqtt_client_kit import barrier


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_will_is_published_on_abnormal_close(client, names, v5: bool) -> None:
    """[MQTT-3.1.2-8]: the connection closes without DISCONNECT: the will is published."""
    will_topic = names.topic("will")
    watcher = client("watch", v5=v5)
    watcher.connect()
    watcher.subscribe(will_topic, qos=1)
    dying = client("dying", v5=v5)
    dying.will(will_topic, b"gone", qos=1)
    dying.connect()
    dying.drop()
    (m,) = watcher.expect(1)
    assert (m.topic, m.payload, m.qos, m.retain) == (will_topic, b"gone", 1, False)


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_will_is_not_published_after_disconnect(client, names, v5: bool) -> None:
    """[MQTT-3.1.2-10]: DISCONNECT (reason 0x00 in 5.0) removes the will."""
    will_topic = names.topic("will")
    watcher = client("watch", v5=v5)
    watcher.connect()
    watcher.subscribe(will_topic, qos=1)
    leaving = client("leaving", v5=v5)
    leaving.will(will_topic, b"should not be sent", qos=1)
    leaving.connect()
    leaving.disconnect()
    assert barrier(watcher, will_topic) == []


def test_will_properties_are_kept(client, names) -> None:
    """5.0 §3.1.3.2: the will's properties reach the subscriber."""
    will_topic = names.topic("will")
    watcher = client("watch")
    watcher.connect()
    watcher.subscribe(will_topic, qos=1)
    dying = client("dying")
    dying.will(
        will_topic,
        b"{}",
        qos=1,
        ContentType="application/json",
        UserProperty=[("k", "v")],
        PayloadFormatIndicator=1,
    )
    dying.connect()
    dying.drop()
    (m,) = watcher.expect(1)
    assert m.prop("ContentType") == "application/json"
    assert m.prop("UserProperty") == [("k", "v")]
    assert m.prop("PayloadFormatIndicator") == 1


def test_will_delay_interval_waits(client, names) -> None:
    """5.0 §3.1.3.2.2: the will is published when the delay has passed (2 s), not at
    the moment the connection drops."""
    will_topic = names.topic("will")
    watcher = client("watch")
    watcher.connect()
    watcher.subscribe(will_topic, qos=1)
    dying = client("dying", clean=True)
    dying.will(will_topic, b"late", qos=1, WillDelayInterval=2)
    dying.connect(SessionExpiryInterval=30)
    dropped = time.monotonic()
    dying.drop()
    (m,) = watcher.expect(1, timeout=10)
    assert m.payload == b"late"
    assert m.at - dropped >= 1.9
    client("dying").connect()  # end the stored session


def test_will_delay_not_published_when_the_client_comes_back(client, names) -> None:
    """5.0 [MQTT-3.1.3-9]: a reconnect of the same session before the delay has passed
    cancels the will."""
    will_topic = names.topic("will")
    watcher = client("watch")
    watcher.connect()
    watcher.subscribe(will_topic, qos=1)
    dying = client("dying", clean=True)
    dying.will(will_topic, b"cancelled", qos=1, WillDelayInterval=3)
    dying.connect(SessionExpiryInterval=30)
    dying.drop()
    back = client("dying", clean=False)
    assert back.connect(SessionExpiryInterval=30).session_present is True
    time.sleep(4)  # the time that passes is the test: past the will delay
    assert barrier(watcher, will_topic) == []
    back.disconnect(SessionExpiryInterval=0)


def test_will_sent_when_session_ends_before_the_delay(client, names) -> None:
    """5.0 §3.1.3.2.2: the will is published at the delay or when the session ends,
    whichever comes first: session expiry 1 s, will delay 30 s."""
    will_topic = names.topic("will")
    watcher = client("watch")
    watcher.connect()
    watcher.subscribe(will_topic, qos=1)
    dying = client("dying")
    dying.will(will_topic, b"session over", qos=1, WillDelayInterval=30)
    dying.connect(SessionExpiryInterval=1)
    dying.drop()
    (m,) = watcher.expect(1, timeout=8)
    assert m.payload == b"session over"
