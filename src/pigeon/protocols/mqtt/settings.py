"""What every MQTT connection of a broker shares: settings and the client-id registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from pigeon.core.ports import Scheduler
from pigeon.operations.services import Services
from pigeon.protocols.mqtt.sessions import SessionRegistry
from pigeon.protocols.mqtt.topics import DEFAULT_LIMITS, TopicLimits

ANONYMOUS_LOOPBACK = "loopback"  # anonymous clients from loopback only (RabbitMQ's guest)
ANONYMOUS_ALWAYS = "always"
ANONYMOUS_NEVER = "never"


@dataclass(frozen=True)
class MQTTSettings:
    exchange: str = "amq.topic"
    # A username without "vhost:" logs in to this vhost (RabbitMQ's mqtt.vhost).
    vhost: str = "/"
    # Who may connect without a username, as the default user (RabbitMQ's allow_anonymous
    # and its guest, which may connect from loopback only).
    anonymous: str = ANONYMOUS_LOOPBACK
    anonymous_user: str = "guest"
    # Unacknowledged QoS 1/2 deliveries per session; a 5.0 client's receive maximum
    # lowers it (RabbitMQ's mqtt.prefetch, 10 there). Above the transport's budget of
    # 128 packets per turn, so that a subscriber keeps pace with a publisher: with 10 it
    # got 10 messages a round trip while the publisher put 128 a turn into its queue.
    inflight: int = 256
    # QoS 2 publishes a 5.0 client may have unanswered (our receive maximum).
    receive_maximum: int = 65_535
    # Topic aliases a 5.0 client may set for its PUBLISHes to us (0: none).
    topic_alias_maximum: int = 64
    # Seconds a persistent session outlives its connection at most (RabbitMQ's
    # mqtt.max_session_expiry_interval_seconds); a 3.1.1 persistent session gets it.
    max_session_expiry: int = 86_400
    # Packet sizes a client may send, fixed header included: after CONNECT (advertised
    # as 5.0's Maximum Packet Size) and until then (RabbitMQ's
    # max_packet_size_authenticated and _unauthenticated). Above them: 0x95.
    maximum_packet_size: int = 16 * 1024 * 1024
    # A CONNECT without username and password over TLS logs in as the user its verified
    # client certificate names (RabbitMQ's mqtt.ssl_cert_login).
    cert_login: bool = False
    connect_maximum_packet_size: int = 65_536
    # Longer client ids are refused: 5.0 CONNACK 0x85, 3.1.1 return code 2 [MQTT-3.1.3-9].
    max_client_id_length: int = 1024
    # Topic names and filters: longer or deeper ones are refused (0x90, SUBACK 0x8F).
    topic_limits: TopicLimits = DEFAULT_LIMITS
    # Seconds from the TCP accept to the CONNECT (the transport's handshake timeout).
    connect_timeout: float = 10.0
    # The longest keep-alive a client may use, in seconds (RabbitMQ's mqtt.max_keepalive;
    # 0: no limit): a 5.0 client asking more, or none, gets it as Server Keep Alive;
    # a 3.1.1 client asking more is refused.
    max_keepalive: int = 0
    # Messages a session's queue holds at most (x-max-length; 0: no limit), and what a
    # full one does: "drop-head" (the oldest goes) or "reject-publish" (the new one is
    # refused: 5.0 PUBACK/PUBREC 0x97, 3.1.1 no PUBACK), RabbitMQ's overflow modes.
    max_queued: int = 0
    queue_overflow: str = "drop-head"


@dataclass(eq=False)
class MQTTContext:
    """One per broker, shared by its MQTT listeners (TCP, TLS, WebSocket)."""

    services: Services
    scheduler: Scheduler
    settings: MQTTSettings = MQTTSettings()
    registry: SessionRegistry = field(default_factory=SessionRegistry)

    def __post_init__(self) -> None:
        self.registry.store = self.services.node.store  # persistent sessions' packet ids
