"""One MQTT client connection, sans-IO: bytes in, packets handled, bytes out.

:class:`MQTTSession` implements :class:`pigeon.transport.session.Session`, so
the shared asyncio glue drives it (turns, output, the connect timeout, the
keep-alive). Packets are decoded by :class:`~.codec.Decoder`; the requests they
make go through the operations layer (:class:`pigeon.operations.client.Client`),
which checks every permission. PUBLISH, SUBSCRIBE and UNSUBSCRIBE are handled
in :mod:`.inbound`, deliveries in :mod:`.delivery`.

A protocol violation closes the connection: a 5.0 client gets DISCONNECT with
the reason code first [MQTT-4.13.1-1]; a refused CONNECT gets its CONNACK.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pigeon.auth.authenticator import LoginRefused
from pigeon.auth.authorization import Identity
from pigeon.auth.gate import LoginAttempt
from pigeon.operations.client import Client
from pigeon.operations.sessions import SessionInfo
from pigeon.protocols.mqtt import convert, counting, description, inbound, opening
from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.connect import Login, login_of
from pigeon.protocols.mqtt.delivery import MQTTConsumer, Outbound
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Unsubscribe,
    Will,
)
from pigeon.protocols.mqtt.properties import Properties
from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode, protocol_error
from pigeon.protocols.mqtt.sessions import SessionState
from pigeon.protocols.mqtt.subscriptions import Subscriptions
from pigeon.transport.session import Keepalive, Peer, Phase, SessionFactory, Waiter

if TYPE_CHECKING:
    from pigeon.core.ports import TimerHandle
    from pigeon.core.queue import Queue
    from pigeon.core.vhost import VirtualHost
    from pigeon.protocols.mqtt.settings import MQTTContext

log = logging.getLogger("pigeon.mqtt")


class MQTTSession:
    """One MQTT connection and the session it serves."""

    # Slots: an idle connection's session is 1.6 kB smaller than with an instance dict
    # (issue 15's memory per idle connection). An attribute not listed still works,
    # in the __dict__ slot, at a dict's cost: list new ones here.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_attempt",
        "_counted",
        "_logging_in",
        "_next",
        "_out",
        "_pending",
        "_phase",
        "_resume",
        "_syncing",
        "_violation",
        "acks",
        "answering",
        "client",
        "connect",
        "consumer",
        "context",
        "counts",
        "credential_timer",
        "decoder",
        "drop_queue",
        "ended",
        "identity",
        "keepalive_seconds",
        "login",
        "opened_as",
        "outbound",
        "publish_checks",
        "published",
        "publisher",
        "queue",
        "remote",
        "session_expiry",
        "settings",
        "shared",
        "state",
        "subscriptions",
        "topic_aliases",
        "version",
        "want_flush",
        "will",
    )

    def __init__(self, context: MQTTContext, peer: Peer, want_flush: Callable[[], None]) -> None:
        self.context = context
        self.settings = context.settings
        self.remote = peer
        self.want_flush = want_flush
        # The broker's limit from the first byte: packets a client sends behind its CONNECT,
        # before the CONNACK, are held to it too (CONNECT itself has its own, lower one).
        self.decoder = Decoder(
            maximum_packet_size=context.settings.maximum_packet_size,
            connect_maximum_packet_size=context.settings.connect_maximum_packet_size,
        )
        self.version = MQTT_5
        self._phase = Phase.HANDSHAKE
        # Decoded packets not handled yet, from _next on (a list: an idle connection's
        # empty one is 56 bytes, a deque's 600).
        self._pending: list[Packet] = []
        self._next = 0
        self._violation: ProtocolViolation | None = None
        self._out: list[bytes] = []
        self._attempt: LoginAttempt | None = None
        self._logging_in = False
        self._resume: Callable[[], object] | None = None
        self.connect: Connect | None = None
        self.login: Login | None = None
        self.identity: Identity | None = None
        self.client: Client | None = None
        self.state: SessionState | None = None
        self.subscriptions: Subscriptions | None = None
        self.outbound: Outbound | None = None
        self.publisher = convert.Publisher("")  # its client id once CONNECT is accepted
        self.consumer: MQTTConsumer | None = None
        # "$share/group/filter" -> the consumer of that shared subscription's queue
        self.shared: dict[str, MQTTConsumer] = {}
        self.queue: Queue | None = None
        self.session_expiry = 0
        self.drop_queue = False  # a DISCONNECT ended the persistent session (expiry 0)
        self.keepalive_seconds = 0
        self.will: Will | None = None
        self.topic_aliases: dict[int, str] = {}  # a 5.0 client's, for this connection
        # topic -> (routing key, exchange) of publishes that passed every check (inbound)
        self.publish_checks: dict[str, tuple[str, Any]] = {}
        self.acks: list[Packet] = []  # QoS 1/2 answers of this turn, sent once on disk
        self.answering = 0  # QoS 1 publishes whose PUBACK is not sent yet
        self._syncing = 0
        self._counted = False
        self.credential_timer: TimerHandle | None = None  # a token login's expiry
        self.ended = False
        self.published = False
        self.counts = counting.SessionCounts()
        self.opened_as: str | None = None  # the protocol name, once CONNACK said yes

    # -- the transport's Session ---------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def blocked(self) -> bool:
        return False

    @property
    def peer(self) -> str:
        return self.remote.address

    @property
    def username(self) -> str:
        return self.identity.name if self.identity is not None else ""

    @property
    def channels(self) -> Mapping[int, Any]:
        """MQTT has no channels (the management API lists a session as a connection)."""
        return {}

    @property
    def vhost(self) -> VirtualHost:
        assert self.client is not None
        return self.client.vhost

    @property
    def vhost_name(self) -> str | None:
        return self.client.vhost.name if self.client is not None else None

    def receive_data(self, data: bytes) -> None:
        if self._violation is not None:
            return
        try:
            self._pending += self.decoder.feed(data)
        except ProtocolViolation as violation:
            self._pending += violation.packets
            self._violation = violation

    def process(self, budget: int) -> bool:
        self.published = False
        pending, index = self._pending, self._next
        # The turn's publishes, as the core counts them (a CONNECT's turn is not counted).
        vstats = self.client.vhost.stats if self.client is not None else None
        if vstats is not None:
            received, routed = vstats.received, vstats.routed
        while index < len(pending) and budget > 0 and not self._logging_in and not self.ended:
            packet = pending[index]
            end = index + 1
            if self.client is not None:  # (after CONNECT) publishes to one topic go together
                end = max(end, inbound.plain_run(pending, index, min(len(pending), index + budget)))
            budget -= end - index
            try:
                if end - index > 1:
                    inbound.publish_run(self, pending[index:end])  # type: ignore[arg-type]
                else:
                    self.handle(packet)
            except ProtocolViolation as violation:
                self.fail(violation)
            index = end
        left = self._handled(pending, index)
        if not left and self._violation is not None and not self._logging_in:
            late, self._violation = self._violation, None
            self.fail(late)
        if vstats is not None:
            counts = self.counts
            counts.received += vstats.received - received
            counts.routed += vstats.routed - routed
        if self.outbound is not None:
            self.outbound.settle()
        if self.client is not None:
            self.client.vhost.dispatch_due()
        state = self.state
        if state is not None and state.dirty:
            state.flush()
        self._send_acks()
        if self._out or self._phase is not Phase.OPEN:
            self.want_flush()
        return left and not self._logging_in and not self.ended

    def _handled(self, pending: list[Packet], index: int) -> bool:
        """Forget the packets handled this turn; whether any are left."""
        if pending is not self._pending:  # (dropped while handled: see _drop_pending)
            return False
        if index >= len(pending):
            pending.clear()
            self._next = 0
            return False
        if index > 4096:
            del pending[:index]
            index = 0
        self._next = index
        return True

    def _drop_pending(self) -> None:
        self._pending = []
        self._next = 0

    def throttle(self) -> Waiter | None:
        if self._logging_in:
            return self._wait_login
        store = self.context.services.node.store
        if self.published and store is not None and store.queued_writes > 20_000:
            return store.sync
        return None

    def _wait_login(self, resume: Callable[[], object]) -> None:
        self._resume = resume

    def data_to_send(self) -> bytes:
        out, self._out = self._out, []
        if self.outbound is not None:
            self.outbound.turn_bytes = 0
        return b"".join(out)

    def output_flushed(self) -> None:
        outbound = self.outbound
        if outbound is not None and outbound.starved:
            outbound.starved = False
            self._dispatch()

    def pause_output(self) -> None:
        if self.outbound is not None:
            self.outbound.paused = True

    def resume_output(self) -> None:
        if self.outbound is not None:
            self.outbound.paused = False
            self._dispatch()

    def keepalive(self) -> Keepalive | None:
        """The client must send something within 1.5 times its keep-alive [MQTT-3.1.2-24];
        the server sends nothing of its own (PINGRESP only answers). A 5.0 client that
        misses it gets DISCONNECT 0x8D first."""
        seconds = self.keepalive_seconds
        if not seconds:
            return None
        return Keepalive(
            tick=min(seconds / 2, 5.0),
            timeout=1.5 * seconds,
            send=False,
            expired=self._keepalive_expired if self.version == MQTT_5 else None,
        )

    def _keepalive_expired(self) -> None:
        self.close(ReasonCode.KEEP_ALIVE_TIMEOUT)

    def send_heartbeat(self) -> None:
        pass

    def internal_error(self) -> None:
        self.close(ReasonCode.UNSPECIFIED_ERROR)

    def shutdown(self, text: str = "") -> None:
        """The broker closes the connection: shutting down, or (``text``) an operator's
        close through the management API (5.0: 0x8B or 0x98)."""
        reason = ReasonCode.ADMINISTRATIVE_ACTION if text else ReasonCode.SERVER_SHUTTING_DOWN
        self.close(reason, will=False)

    def connection_lost(self) -> None:
        self.end(will=True)

    # -- output ----------------------------------------------------------------------

    def send(self, packet: Packet) -> None:
        self.write(encode(packet, self.version))

    def write(self, data: bytes) -> None:
        self._out.append(data)
        self.want_flush()

    def _send_acks(self) -> None:
        """PUBACK/PUBREC go out once what the publishes wrote is on disk (the rule of
        AMQP's publisher confirms: the store's barrier covers every write before it)."""
        acks = self.acks
        if not acks:
            return
        self.acks = []
        self.counts.confirmed += len(acks)
        store = self.context.services.node.store
        if store is None or (store.durable >= store.written and not self._syncing):
            self._send_answers(acks)
            return
        self._syncing += 1
        store.sync(lambda: self._synced(acks))

    def _synced(self, acks: list[Packet]) -> None:
        self._syncing -= 1
        if not self.ended:
            self._send_answers(acks)

    def _send_answers(self, acks: list[Packet]) -> None:
        """A turn's answers in one write."""
        version = self.version
        parts = []
        for packet in acks:
            if type(packet) is Puback:
                self.answering -= 1
            parts.append(encode(packet, version))
        self.write(b"".join(parts))

    # -- packets ---------------------------------------------------------------------

    def handle(self, packet: Packet) -> None:
        kind = type(packet)
        outbound = self.outbound
        if outbound is not None and outbound.settled and kind is not Puback:
            # Acknowledgements read before this packet take effect before it (what they
            # let through goes out ahead of, say, the PINGRESP answering it).
            outbound.settle()
        if kind is Publish:
            assert isinstance(packet, Publish)
            inbound.publish(self, packet)
        elif kind is Puback:
            assert isinstance(packet, Puback) and self.outbound is not None
            self.outbound.acknowledged(packet.packet_id, released=True)
        elif kind is Pubrec:
            assert isinstance(packet, Pubrec) and self.outbound is not None
            known = self.outbound.acknowledged(packet.packet_id, released=False)
            if known or packet.packet_id in self.outbound.state.awaiting_complete:
                self.send(Pubrel(packet.packet_id))
            elif self.version == MQTT_5:
                self.send(Pubrel(packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
        elif kind is Pubrel:
            assert isinstance(packet, Pubrel)
            inbound.release(self, packet.packet_id)
        elif kind is Pubcomp:
            assert isinstance(packet, Pubcomp) and self.outbound is not None
            self.outbound.completed(packet.packet_id)
            self._dispatch()
        elif kind is Subscribe:
            assert isinstance(packet, Subscribe)
            inbound.subscribe(self, packet)
        elif kind is Unsubscribe:
            assert isinstance(packet, Unsubscribe)
            inbound.unsubscribe(self, packet)
        elif kind is Pingreq:
            self.send(Pingresp())
        elif kind is Disconnect:
            assert isinstance(packet, Disconnect)
            self._disconnected(packet)
        elif kind is Connect:
            assert isinstance(packet, Connect)
            self._connect(packet)
        else:
            raise protocol_error(f"unexpected {kind.__name__}")  # AUTH without a method

    def _disconnected(self, packet: Disconnect) -> None:
        """The client's DISCONNECT: no will, unless 5.0's 0x04 asks for it [MQTT-3.14.4-3].
        A 5.0 DISCONNECT may change the Session Expiry Interval (§3.14.2.2.2)."""
        expiry = packet.properties.session_expiry_interval
        if expiry is not None:
            opening.change_expiry(self, expiry)
        self._phase = Phase.CLOSED
        self.end(will=packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)

    def fail(self, violation: ProtocolViolation) -> None:
        log.info("closing MQTT connection %s: %s", self.remote.address, violation)
        if self.outbound is None:
            if self.connect is None:
                if self.decoder.version in (None, MQTT_3_1_1) and (
                    violation.reason != ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
                ):
                    # Not a CONNECT at all [MQTT-3.1.0-1], or a 3.1.1 CONNECT that breaks
                    # §3.1: closed without a CONNACK [MQTT-3.1.4-1] (3.1.1 has no code
                    # for it; only an unsupported level gets one [MQTT-3.1.2-2]).
                    self._refuse(None)
                    return
                # A CONNECT refused as it was decoded: answered in its version, or in
                # 3.1.1's form for a level we do not speak (as RabbitMQ answers).
                self.version = self.decoder.version or MQTT_3_1_1
            elif self.version == MQTT_3_1_1 and violation.reason == ReasonCode.TOPIC_NAME_INVALID:
                self._refuse(None)  # a bad will topic: 3.1.1 has no code [MQTT-3.1.4-1]
                return
            self._refuse(violation.reason)  # a CONNECT answered with its CONNACK
        else:
            self.close(violation.reason)

    def close(self, reason: ReasonCode, *, will: bool = True) -> None:
        """Close from our side; a connected 5.0 client is told why first, and nothing
        follows the DISCONNECT [MQTT-3.14.4-1] (answers of this turn are dropped: the
        client sends those publishes again)."""
        if self.version == MQTT_5 and self.outbound is not None and not self.ended:
            self.acks = []
            self.send(Disconnect(reason))
        self._phase = Phase.CLOSED
        self.want_flush()
        self.end(will=will)

    def taken_over(self) -> None:
        """Another connection CONNECTed with this client id [MQTT-3.1.4-3]."""
        self.close(ReasonCode.SESSION_TAKEN_OVER)

    # -- CONNECT ---------------------------------------------------------------------

    def _connect(self, packet: Connect) -> None:
        self.version = packet.protocol_level
        self.connect = packet
        remote = self.remote
        self.login = login = login_of(
            packet, self.settings, loopback=remote.loopback, certificate=bool(remote.certificate)
        )
        services = self.context.services
        if login.username is None:
            authenticator = services.authenticator
            try:
                if login.by_certificate:
                    outcome: Identity | BaseException = authenticator.login_external(
                        remote.certificate, peer=remote.address, loopback=remote.loopback
                    )
                else:
                    outcome = authenticator.login_anonymous(
                        self.settings.anonymous_user, peer=remote.address, loopback=remote.loopback
                    )
            except LoginRefused as refused:
                outcome = refused
            self._logged_in(outcome)
            return
        credentials = (login.username, login.password)
        gate = services.logins
        if gate is None:
            try:
                outcome = services.authenticator.login(
                    "PLAIN", credentials, peer=self.remote.address, loopback=self.remote.loopback
                )
            except LoginRefused as refused:
                outcome = refused
            self._logged_in(outcome)
            return
        self._logging_in = True
        self._attempt = gate.login(
            "PLAIN",
            credentials,
            peer=self.remote.address,
            loopback=self.remote.loopback,
            certificate=self.remote.certificate,
            answer=self._logged_in,
        )

    def _logged_in(self, outcome: Identity | BaseException) -> None:
        self._attempt = None
        waiting, self._logging_in = self._logging_in, False
        if self.ended:
            return
        if isinstance(outcome, LoginRefused):
            self._refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        elif isinstance(outcome, BaseException):
            log.error("login check failed on %s", self.remote.address, exc_info=outcome)
            self._refuse(ReasonCode.UNSPECIFIED_ERROR)
        else:
            try:
                self._open(outcome)
            except ProtocolViolation as violation:
                self._refuse(violation.reason)
            if self.state is not None:
                self.state.flush()
        self.want_flush()
        if waiting and self._resume is not None:
            resume, self._resume = self._resume, None
            resume()

    def _refuse(self, reason: ReasonCode | None) -> None:
        """CONNACK with a failure (None: no answer), then close [MQTT-3.2.2-5]."""
        if reason is not None:
            self.send(Connack(False, reason))
        self._phase = Phase.CLOSED
        self._drop_pending()
        self.end(will=False)

    def _open(self, identity: Identity) -> None:
        opening.open_session(self, identity)
        if self.state is not None and self.state.shared:
            inbound.resume_shared(self)

    def opened(self) -> None:
        self._phase = Phase.OPEN
        self.opened_as = name = description.PROTOCOL_NAMES.get(self.version, "MQTT")
        counting.opened(self.context.services.node.stats, name)

    def server_properties(self, assigned: str | None, keepalive: int | None) -> Properties:
        """What a 5.0 CONNACK says of this server (§3.2.2.3); ``keepalive``: the Server
        Keep Alive, when the client's was lowered [MQTT-3.2.2-21]."""
        settings = self.settings
        return Properties(
            server_keep_alive=keepalive,
            assigned_client_identifier=assigned,
            receive_maximum=settings.receive_maximum,
            retain_available=True,
            topic_alias_maximum=settings.topic_alias_maximum or None,
            maximum_packet_size=settings.maximum_packet_size,
            shared_subscription_available=True,
            subscription_identifier_available=True,
            wildcard_subscription_available=True,
        )

    def describe(self) -> SessionInfo:
        return description.describe(self)

    # -- consuming ---------------------------------------------------------------------

    def start_consuming(self, queue: Queue) -> None:
        assert self.client is not None and self.outbound is not None
        if self.consumer is not None:
            return
        self.queue = queue
        consumer = MQTTConsumer(self.outbound, self, self._queue_gone)
        self.consumer = self.client.consume(queue, consumer)
        queue.dispatch()

    def _queue_gone(self) -> None:
        self.consumer = None
        self.queue = None

    def _dispatch(self) -> None:
        if self.queue is not None and self.consumer is not None:
            self.queue.dispatch()
        for consumer in list(self.shared.values()):
            if consumer.queue is not None:
                consumer.queue.dispatch()

    # -- the end -----------------------------------------------------------------------

    def end(self, *, will: bool) -> None:
        """Let go of the connection's state; the session stays if it is persistent."""
        if self.ended:
            return
        self.ended = True
        self._drop_pending()
        if self._attempt is not None:
            self._attempt.cancel()
            self._attempt = None
        opening.close_session(self, will=will)
        counters = counting.counters(self.counts, self.outbound)
        counting.retire(self.context.services.node.stats, self.opened_as, counters)


def session_factory(context: MQTTContext) -> SessionFactory[MQTTSession]:
    def make(peer: Peer, want_flush: Callable[[], None]) -> MQTTSession:
        return MQTTSession(context, peer, want_flush)

    return make
