"""MQTT 5.0 properties and options as a subscriber sees them: user properties, content
type, payload format indicator, request/response, topic aliases, subscription
identifiers, no-local, maximum packet size."""

from __future__ import annotations

from typing import Any

from mqtt_client_kit import Client, barrier, publish_props

TOPIC_ALIAS_INVALID = 0x94


def _pair(client, topic: str, **sub_options: Any) -> tuple[Client, Client]:
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1, **sub_options)
    pub = client("pub")
    pub.connect()
    return pub, sub


def test_user_properties_keep_order_and_repeats(client, names) -> None:
    """[MQTT-3.3.2-17], [MQTT-3.3.2-18]: user properties reach the subscriber unaltered,
    in order, a name repeated as often as it was sent."""
    topic = names.topic("up")
    pub, sub = _pair(client, topic)
    sent = [("b", "2"), ("a", "1"), ("b", "3"), ("ünï", "cödé"), ("a", "1")]
    pub.publish(topic, b"x", qos=1, UserProperty=sent)
    (m,) = sub.expect(1)
    assert m.prop("UserProperty") == sent


def test_content_type_and_payload_format_indicator(client, names) -> None:
    """[MQTT-3.3.2-4], [MQTT-3.3.2-20]: both forwarded unaltered."""
    topic = names.topic("ct")
    pub, sub = _pair(client, topic)
    pub.publish(
        topic,
        "π".encode(),
        qos=1,
        ContentType="text/plain; charset=utf-8",
        PayloadFormatIndicator=1,
    )
    pub.publish(topic, b"\xff\x00", qos=1, PayloadFormatIndicator=0, ContentType="x/bin")
    first, second = sub.expect(2)
    assert first.prop("ContentType") == "text/plain; charset=utf-8"
    assert first.prop("PayloadFormatIndicator") == 1
    assert first.payload == "π".encode()
    assert second.prop("ContentType") == "x/bin"
    assert second.prop("PayloadFormatIndicator", 0) == 0
    assert second.payload == b"\xff\x00"


def test_request_response(client, names) -> None:
    """5.0 §4.10: the requester's Response Topic and Correlation Data reach the
    responder, whose reply on that topic carries the correlation data back."""
    request_topic, response_topic = names.topic("req"), names.topic("resp")
    responder = client("responder")
    responder.connect()
    responder.subscribe(request_topic, qos=1)
    requester = client("requester")
    requester.connect()
    requester.subscribe(response_topic, qos=1)
    for n in (1, 2):
        requester.publish(
            request_topic,
            f"question {n}",
            qos=1,
            ResponseTopic=response_topic,
            CorrelationData=bytes([n, 0, 255]),
        )
    for request in responder.expect(2):
        assert request.prop("ResponseTopic") == response_topic
        responder.publish(
            request.prop("ResponseTopic"),
            b"answer to " + request.payload,
            qos=1,
            CorrelationData=request.prop("CorrelationData"),
        )
    answers = requester.expect(2)
    assert [(m.payload, m.prop("CorrelationData")) for m in answers] == [
        (b"answer to question 1", bytes([1, 0, 255])),
        (b"answer to question 2", bytes([2, 0, 255])),
    ]


def test_request_response_information(client) -> None:
    """5.0 §3.1.2.11.7: Request Response Information 1: the broker may return Response
    Information in CONNACK; if it does, it is a non-empty string."""
    c = client()
    connack = c.connect(RequestResponseInformation=1)
    info = connack.prop("ResponseInformation")
    assert info is None or (isinstance(info, str) and info)


def test_topic_alias_from_client(client, names) -> None:
    """5.0 §3.3.2.3.4: the broker's CONNACK allows topic aliases; the client sets alias 1
    with the topic, then publishes with the alias alone; the subscriber gets the full
    topic both times."""
    topic = names.topic("alias")
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1)
    pub = client("pub")
    # Issue 15 asks for aliases both ways: the broker must offer some (Mosquitto: 10).
    assert pub.connect().prop("TopicAliasMaximum", 0) >= 1, "the broker takes no aliases"
    pub.publish(topic, b"with topic", qos=1, TopicAlias=1)
    pub.publish("", b"alias only", qos=1, TopicAlias=1)
    got = sub.expect(2)
    assert [(m.topic, m.payload) for m in got] == [(topic, b"with topic"), (topic, b"alias only")]


def test_topic_alias_above_the_maximum_is_a_protocol_error(client, names) -> None:
    """[MQTT-3.3.2-9]: an alias above the broker's Topic Alias Maximum (CONNACK; 0 when
    absent) gets DISCONNECT 0x94 Topic Alias invalid."""
    c = client("pub")
    connack = c.connect()
    maximum = connack.prop("TopicAliasMaximum", 0)
    c.paho.publish(
        names.topic("alias"), b"x", qos=1, properties=publish_props(TopicAlias=maximum + 1)
    )
    reason, _ = c.disconnects.get(timeout=10)
    assert reason == TOPIC_ALIAS_INVALID


def test_topic_alias_to_client(client, names) -> None:
    """5.0 [MQTT-3.3.2-10], [MQTT-3.3.2-11]: the broker may use topic aliases towards a
    client that allows them (Topic Alias Maximum 2), never above that maximum; resolved
    as a client must, every message names its topic."""
    topics = [names.topic("ta", str(i)) for i in range(4)]
    sub = client("sub")
    sub.connect(TopicAliasMaximum=2)
    sub.subscribe(names.topic("ta", "+"), qos=1)
    pub = client("pub")
    pub.connect()
    sent = [(topics[i % 4], str(i).encode()) for i in range(12)]
    for topic, payload in sent:
        pub.publish(topic, payload, qos=1)
    aliases: dict[int, str] = {}
    resolved = []
    for m in sub.expect(12):
        alias = m.prop("TopicAlias")
        if alias is not None:
            assert 1 <= alias <= 2
            if m.topic:
                aliases[alias] = m.topic
            assert alias in aliases, "an alias the broker never set"
        resolved.append((m.topic or aliases[alias], m.payload))
    assert resolved == sent


def test_no_topic_alias_to_a_client_that_allows_none(client, names) -> None:
    """[MQTT-3.3.2-10]: Topic Alias Maximum absent (0): the broker sends no alias."""
    topic = names.topic("ta")
    pub, sub = _pair(client, topic)
    for i in range(5):
        pub.publish(topic, str(i).encode(), qos=1)
    got = sub.expect(5)
    assert [m.prop("TopicAlias") for m in got] == [None] * 5
    assert {m.topic for m in got} == {topic}


def test_subscription_identifier(client, names) -> None:
    """5.0 §3.3.4: a message matching a subscription made with an
    identifier carries it; one matching a subscription without carries none."""
    sub = client("sub")
    sub.connect()
    sub.subscribe(names.topic("sid", "+"), qos=1, SubscriptionIdentifier=42)
    sub.subscribe(names.topic("plain"), qos=1)
    pub = client("pub")
    pub.connect()
    pub.publish(names.topic("sid", "x"), b"with id", qos=1)
    pub.publish(names.topic("plain"), b"without", qos=1)
    with_id, without = sub.expect(2)
    assert with_id.prop("SubscriptionIdentifier") == [42]
    assert without.prop("SubscriptionIdentifier") is None


def test_subscription_identifiers_of_overlapping_subscriptions(client, names) -> None:
    """5.0 §3.3.4: two overlapping subscriptions with identifiers 7 and 9: one copy with
    both identifiers, or one copy per subscription with its own; either way both appear."""
    sub = client("sub")
    sub.connect()
    sub.subscribe(names.topic("o", "#"), qos=1, SubscriptionIdentifier=7)
    sub.subscribe(names.topic("o", "x"), qos=1, SubscriptionIdentifier=9)
    pub = client("pub")
    pub.connect()
    pub.publish(names.topic("o", "x"), b"both", qos=1)
    copies = [sub.expect(1)[0]]
    copies += barrier(sub, names.topic("o", "x"))
    ids = sorted(i for m in copies for i in m.prop("SubscriptionIdentifier"))
    assert ids == [7, 9]
    assert all(m.payload == b"both" for m in copies)


def test_subscription_identifier_updated_by_resubscribe(client, names) -> None:
    topic = names.topic("sid")
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=1, SubscriptionIdentifier=1)
    sub.subscribe(topic, qos=1, SubscriptionIdentifier=2)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"x", qos=1)
    (m,) = sub.expect(1)
    assert m.prop("SubscriptionIdentifier") == [2]


def test_no_local(client, names) -> None:
    """[MQTT-3.8.3-3]: a no-local subscription does not get the client's own publishes;
    the same client's other subscription and other clients' publishes arrive."""
    topic = names.topic("nl")
    me = client("me")
    me.connect()
    me.subscribe(topic, qos=1, no_local=True)
    me.publish(topic, b"mine", qos=1)
    other = client("other")
    other.connect()
    other.publish(topic, b"theirs", qos=1)
    (m,) = me.expect(1)
    assert m.payload == b"theirs"
    me.subscribe(names.topic("echo"), qos=1)
    assert barrier(me, names.topic("echo")) == []


def test_maximum_packet_size_of_the_client(client, names) -> None:
    """[MQTT-3.1.2-25]: the broker never sends a packet larger than the client's Maximum
    Packet Size (256 bytes); it drops the message for that client instead."""
    topic = names.topic("mps")
    sub = client("sub")
    sub.connect(MaximumPacketSize=256)
    sub.subscribe(topic, qos=1)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"x" * 1000, qos=1)
    pub.publish(topic, b"small", qos=1)
    (m,) = sub.expect(1)
    assert m.payload == b"small"
    assert barrier(sub, topic) == []


def test_maximum_packet_size_of_the_broker(client, names) -> None:
    """5.0 §3.2.2.3.6: a broker that states a Maximum Packet Size in CONNACK refuses a
    bigger PUBLISH (DISCONNECT 0x95); without one, a 256 KiB message goes through."""
    topic = names.topic("big")
    pub, sub = _pair(client, topic)
    connack_limit = client("probe").connect().prop("MaximumPacketSize")
    body = bytes(range(256)) * 1024
    if connack_limit is not None and connack_limit < len(body) + 100:
        pub.paho.publish(topic, body, qos=1)
        reason, _ = pub.disconnects.get(timeout=10)
        assert reason == 0x95
        return
    pub.publish(topic, body, qos=1)
    (m,) = sub.expect(1)
    assert m.payload == body
