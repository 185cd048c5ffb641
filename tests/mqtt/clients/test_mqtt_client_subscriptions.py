"""Subscriptions: topic filters with wildcards, topics starting with ``$``, overlapping
subscriptions ([MQTT-3.3.5-1]), shared subscriptions and unsubscribe."""

from __future__ import annotations

import pytest
from mqtt_client_kit import (
    barrier,
    connect_packet,
    drain,
    raw_connect,
    read_until_closed,
    subscribe_packet,
)


@pytest.mark.parametrize(
    ("pattern", "matching"),
    [
        ("a/+/c", {"a/b/c", "a//c"}),
        ("a/#", {"a", "a/b", "a/b/c", "a//c", "a/x/y/z"}),
        ("+/+", {"a/b"}),
        ("a/b/#", {"a/b", "a/b/c"}),
        ("+/b/+", {"a/b/c"}),
        ("#", {"a", "a/b", "a/b/c", "a//c", "a/x/y/z", "b"}),
    ],
)
def test_wildcard_matching(client, names, pattern: str, matching: set[str]) -> None:
    """§4.7: ``+`` is one level (an empty one too), ``#`` any number including the parent
    level ([MQTT-4.7.1-2]). Topics are under this test's prefix."""
    topics = ["a", "a/b", "a/b/c", "a//c", "a/x/y/z", "b", "b/a"]
    prefix = names.topic("w")
    sub = client("sub")
    sub.connect()
    sub.subscribe(f"{prefix}/{pattern}", qos=1)
    sub.subscribe(f"{prefix}/end", qos=1)
    pub = client("pub")
    pub.connect()
    for topic in topics:
        pub.publish(f"{prefix}/{topic}", topic.encode(), qos=1)
    got = barrier(sub, f"{prefix}/end")
    if pattern in ("+/+", "#"):  # (b/a matches these too)
        matching = matching | {"b/a"}
    assert sorted(m.payload.decode() for m in got) == sorted(matching)


def test_dollar_topics_do_not_match_leading_wildcards(client, names) -> None:
    """[MQTT-4.7.2-1]: ``#`` and ``+/...`` do not match topics starting with ``$`` (such as
    ``$SYS``); a filter that starts with the same ``$`` level does."""
    dollar = f"$pigeon-test-{names.prefix}"
    wild = client("wild")
    wild.connect()
    wild.subscribe("#", qos=1)
    wild.subscribe("+/x", qos=1)
    wild.subscribe("+/+", qos=1)
    exact = client("exact")
    exact.connect()
    exact.subscribe(f"{dollar}/+", qos=1)
    pub = client("pub")
    pub.connect()
    pub.publish(f"{dollar}/x", b"dollar", qos=1)
    (m,) = exact.expect(1)
    assert (m.topic, m.payload) == (f"{dollar}/x", b"dollar")
    seen = barrier(wild, names.topic("end"))
    assert [x for x in seen if x.topic.startswith("$")] == []


def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(
    client, names, mosquitto_deviates
) -> None:
    """[MQTT-3.3.5-1]: a message matching several of one client's subscriptions is
    delivered once, at the maximum QoS of the matching subscriptions."""
    mosquitto_deviates("sends one copy per matching subscription, each at its own QoS")
    sub = client("sub", v5=False)
    sub.connect()
    sub.subscribe(names.topic("ov", "#"), qos=0)
    sub.subscribe(names.topic("ov", "+"), qos=2)
    sub.subscribe(names.topic("ov", "x"), qos=1)
    pub = client("pub", v5=False)
    pub.connect()
    pub.publish(names.topic("ov", "x"), b"once", qos=2)
    (m,) = sub.expect(1)
    assert (m.payload, m.qos) == (b"once", 2)
    assert barrier(sub, names.topic("ov", "x")) == []


def test_resubscribe_replaces_the_subscription(client, names) -> None:
    """[MQTT-3.8.4-3]: the same filter again replaces the subscription (new QoS), and
    messages are not duplicated."""
    topic = names.topic("re")
    sub = client("sub")
    sub.connect()
    assert sub.subscribe(topic, qos=0) == [0]
    assert sub.subscribe(topic, qos=2) == [2]
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"x", qos=2)
    (m,) = sub.expect(1)
    assert m.qos == 2
    assert barrier(sub, topic) == []


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_unsubscribe_stops_delivery(client, names, v5: bool) -> None:
    topic = names.topic("un")
    sub = client("sub", v5=v5)
    sub.connect()
    sub.subscribe(topic, qos=1)
    sub.subscribe(names.topic("other"), qos=1)
    result, _mid = sub.paho.unsubscribe(topic)
    assert result == 0
    pub = client("pub", v5=v5)
    pub.connect()
    # the UNSUBACK is in once a later round trip is
    assert barrier(sub, names.topic("other")) == []
    pub.publish(topic, b"after unsubscribe", qos=1)
    assert barrier(sub, names.topic("other")) == []


def test_shared_subscription_splits_messages(client, names) -> None:
    """5.0 §4.8.2: members of ``$share/g/filter`` share the messages: each message goes to
    exactly one member, and both members get some."""
    topic = names.topic("shared")
    members = []
    for i in range(2):
        m = client(f"m{i}")
        m.connect()
        assert m.subscribe(f"$share/g{names.prefix}/{topic}", qos=1) == [1]
        members.append(m)
    pub = client("pub")
    pub.connect()
    sent = [str(i).encode() for i in range(40)]
    for payload in sent:
        pub.publish(topic, payload, qos=1)
    got = [[m.payload for m in ms] for ms in drain(members, len(sent))]
    assert sorted(got[0] + got[1], key=int) == sent  # each exactly once
    assert got[0] and got[1], [len(g) for g in got]


def test_shared_and_plain_subscriptions_each_get_a_copy(client, names) -> None:
    topic = names.topic("shared")
    member = client("member")
    member.connect()
    member.subscribe(f"$share/g{names.prefix}/{topic}", qos=1)
    plain = client("plain")
    plain.connect()
    plain.subscribe(topic, qos=1)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"both", qos=1)
    assert [m.payload for m in member.expect(1)] == [b"both"]
    assert [m.payload for m in plain.expect(1)] == [b"both"]


def test_invalid_topic_filter_is_refused(mqtt_target, names) -> None:
    """[MQTT-4.7.1-2]: ``#`` not last is invalid: SUBACK 0x80 (3.1.1), or the connection
    is closed ([MQTT-4.8.0-1] lets the server treat it as malformed). A raw SUBSCRIBE:
    client libraries refuse to send it."""
    sock, reply = raw_connect(mqtt_target, connect_packet(names.client_id(), level=4))
    with sock:
        assert reply == b"\x20\x02\x00\x00", reply.hex()
        sock.sendall(subscribe_packet(1, names.topic("bad", "#", "x"), qos=1))
        rest = read_until_closed(sock, 5) if not (got := sock.recv(64)) else got
    assert rest in (b"", b"\x90\x03\x00\x01\x80"), rest.hex()
