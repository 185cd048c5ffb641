"""MQTT topics and PUBLISH properties <-> the neutral message (docs/mqtt.md, docs/messages.md).

Topics become routing keys on the MQTT exchange as RabbitMQ's MQTT plugin makes
them: levels joined by ``.`` instead of ``/``, ``+`` as ``*``, ``#`` as ``#``,
and a ``.`` inside a level carried as ``/`` (the two swap places), so a topic
survives the round trip and AMQP clients bind with the keys they expect.

The properties follow RabbitMQ's ``mc_mqtt``: QoS >= 1 makes a persistent
message, user properties are headers (in order, repeats kept), correlation
data is the correlation id, the response topic is ``reply_to`` (as a routing
key), content type is content type, and the message expiry interval (seconds)
is the TTL (milliseconds). The published QoS and payload format indicator,
which no neutral field means, travel as annotations.
"""

from __future__ import annotations

import time
from typing import Any, Final

from pigeon.core.message import Header, Message, check_properties
from pigeon.core.message import Properties as Neutral
from pigeon.protocols.mqtt.packets import Publish
from pigeon.protocols.mqtt.properties import NO_PROPERTIES
from pigeon.protocols.mqtt.properties import Properties as MQTTProperties

PROTOCOL: Final = "mqtt"
# Annotations of values with no neutral meaning (core/message.py).
QOS: Final = "mqtt.qos"
PAYLOAD_FORMAT: Final = "mqtt.payload_format"
RETAIN: Final = "mqtt.retain"  # published with RETAIN=1 (for Retain As Published)
CLIENT: Final = "mqtt.client_id"  # the publishing session (for No Local)

_TO_KEY: Final = str.maketrans({"/": ".", ".": "/", "+": "*"})
_TO_TOPIC: Final = str.maketrans({".": "/", "/": "."})


def routing_key(topic: str) -> str:
    """``a/b.c/+`` -> ``a.b/c.*`` (a topic name or a filter)."""
    return topic.translate(_TO_KEY)


def topic(key: str) -> str:
    """The MQTT topic of a routing key (the inverse of :func:`routing_key` for names)."""
    return key.translate(_TO_TOPIC)


class Publisher:
    """One session's conversion of its PUBLISHes: the properties of plain ones (no 5.0
    properties, no RETAIN) are made once per QoS and shared by its messages."""

    __slots__ = ("client_id", "plain")

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        # Made at the first plain publish of each QoS: an idle session holds none.
        self.plain: list[Neutral | None] = [None, None, None]

    def _plain(self, qos: int) -> Neutral:
        properties = self.plain[qos]
        if properties is None:
            annotations = ((QOS, qos), (CLIENT, self.client_id))
            properties = self.plain[qos] = Neutral(durable=qos > 0, annotations=annotations)
        return properties

    def message(self, publish: Publish, exchange: str, key: str | None = None) -> Message:
        """The message a PUBLISH makes (``key``: its topic's routing key, if known);
        PreconditionFailed for what no protocol carries."""
        props = publish.properties
        if props is NO_PROPERTIES and not publish.retain:
            properties = self.plain[publish.qos] or self._plain(publish.qos)
        else:
            properties = _neutral_properties(publish.qos, props, publish.retain, self.client_id)
            check_properties(properties)
        return Message(
            exchange,
            routing_key(publish.topic) if key is None else key,
            properties,
            publish.payload,
            time.monotonic_ns(),
        )


def _neutral_properties(qos: int, props: MQTTProperties, retain: bool, client_id: str) -> Neutral:
    annotations: list[Header] = [(QOS, qos), (CLIENT, client_id)]
    if retain:
        annotations.append((RETAIN, True))
    if props.payload_format_indicator is not None:
        annotations.append((PAYLOAD_FORMAT, props.payload_format_indicator))
    expiry = props.message_expiry_interval
    return Neutral(
        durable=qos > 0,
        ttl=None if expiry is None else expiry * 1000,
        correlation_id=props.correlation_data,
        reply_to=None if props.response_topic is None else routing_key(props.response_topic),
        content_type=props.content_type,
        headers=tuple(props.user_properties),
        annotations=tuple(annotations),
    )


def published_qos(message: Message) -> int:
    """The QoS a message was published with: MQTT's own, else 1 for a persistent
    message of another protocol and 0 for a transient one (RabbitMQ's rule)."""
    properties = message.properties
    for name, value in properties.annotations:
        if name == QOS and isinstance(value, int):
            return value
    return 1 if properties.durable else 0


def publisher(message: Message) -> str | None:
    """The MQTT client id that published the message, if an MQTT session did."""
    value = message.properties.annotation(CLIENT)
    return value if isinstance(value, str) else None


def was_retained(message: Message) -> bool:
    """Whether the message was published with RETAIN=1 (MQTT's own publishes only)."""
    return message.properties.annotation(RETAIN) is True


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def mqtt_properties(message: Message, *, now: float | None = None) -> MQTTProperties:
    """MQTT 5 properties of a delivery (3.1.1 carries none of them).

    Header values that are not text are sent as their text (user properties are
    UTF-8 pairs); the expiry left is the message's own, rounded up to whole seconds.
    """
    p = message.properties
    expiry = None
    if message.expires_at is not None and now is not None:
        expiry = max(0, int(-(-(message.expires_at - now) // 1)))
    elif p.ttl is not None:
        expiry = -(-p.ttl // 1000)
    payload_format = p.annotation(PAYLOAD_FORMAT)
    if (
        not p.headers
        and p.correlation_id is None
        and p.reply_to is None
        and p.content_type is None
        and expiry is None
        and payload_format is None
    ):
        return NO_PROPERTIES
    return MQTTProperties(
        payload_format_indicator=payload_format if isinstance(payload_format, int) else None,
        message_expiry_interval=expiry,
        content_type=p.content_type,
        response_topic=None if p.reply_to is None else topic(p.reply_to),
        correlation_data=p.correlation_id,
        user_properties=tuple((name, _text(value)) for name, value in p.headers),
    )
