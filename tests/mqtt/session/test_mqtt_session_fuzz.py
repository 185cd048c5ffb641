"""The MQTT session under Hypothesis' stateful fuzzing: sans-IO, a manual clock.

Two clients on one broker core, driven through the shared transport glue on fake
transports (tests/unit/glue_fakes.py): a subscriber S (5.0, a persistent session,
a small Receive Maximum, QoS 1 or 2 on ``f/#``) and a publisher P (3.1.1 or 5.0).
Random sequences of valid packets (publishes at every QoS, QoS 2 resends with DUP,
PUBREL for known and unknown ids, acknowledgements in any order) and invalid ones
(malformed bytes, protocol errors), with S dropping and resuming its session.

Invariants, checked after every step:
- nothing escapes as an exception or an ERROR log; a server DISCONNECT carries a
  reason code of the standard's, never 0x80 (the one a bug gets);
- S never has more QoS 1/2 deliveries unacknowledged than its Receive Maximum
  [MQTT-3.3.4-9]; the queue's unacked and ready counts never go negative;
and at the end, once S has acknowledged everything: every QoS 1/2 message P had
confirmed (PUBACK/PUBREC) reached S, a QoS 2 one (QoS 2 both ways) exactly once
[MQTT-4.3.3], and no QoS 0 message arrived twice.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pigeon.auth.users import UserStore
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    SubscriptionOptions,
)
from pigeon.protocols.mqtt.properties import Properties
from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.protocols.mqtt.subscriptions import queue_name
from pigeon.transport.glue import Hub
from unit.glue_fakes import FakeTransport, ManualClock, connect, hub

FILTER = "f/#"
S_ID = "fuzz-sub"
# Bytes a bad client may send after its CONNECT; every one closes its connection.
MALFORMED = [
    b"\x00\x00",  # packet type 0 [MQTT-2.1.3-1]
    b"\x30\xff\xff\xff\xff\x01",  # Remaining Length over four bytes
    b"\x62\x00",  # PUBREL cut short
    b"\x82\x03\x00\x01\x00",  # SUBSCRIBE without a filter [MQTT-3.8.3-3]
    b"\x36\x06\x00\x01f\x00\x01x",  # QoS 3 [MQTT-3.3.1-4]
    b"\x30\x05\x00\x03f/+",  # a wildcard in a topic name [MQTT-3.3.2-2]
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00",  # a second CONNECT [MQTT-3.1.0-2]
    b"\x20\x02\x00\x00",  # CONNACK from a client
    b"\xe0\x80\x00",  # Remaining Length not in its shortest form [MQTT-1.5.5-1]
]
# What a server may tell a 5.0 client it closes (0x80, Unspecified error, is a bug's).
CLOSE_REASONS = {
    ReasonCode.MALFORMED_PACKET,
    ReasonCode.PROTOCOL_ERROR,
    ReasonCode.TOPIC_NAME_INVALID,
    ReasonCode.TOPIC_ALIAS_INVALID,
    ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
    ReasonCode.PACKET_TOO_LARGE,
    ReasonCode.SESSION_TAKEN_OVER,
}


class Errors(logging.Handler):
    """ERROR records of the broker's loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Peer:
    """One connection: bytes in through the glue, the server's packets out."""

    def __init__(self, mqtt: Hub[MQTTSession], clock: ManualClock, version: int) -> None:
        self.connection, self.transport = connect(mqtt, clock)
        self.clock = clock
        self.version = version
        self.decoder = Decoder(version=version, from_client=False)
        self.seen = 0

    @property
    def closed(self) -> bool:
        return self.transport.closing

    def send_bytes(self, data: bytes) -> list[Packet]:
        if not self.closed:
            self.connection.data_received(data)
        self.clock.run()
        return self.answers()

    def send(self, *packets: Packet) -> list[Packet]:
        return self.send_bytes(b"".join(encode(p, self.version) for p in packets))

    def answers(self) -> list[Packet]:
        transport: FakeTransport = self.transport
        data = transport.output[self.seen :]
        self.seen += len(data)
        return self.decoder.feed(data)


class SessionFuzz(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        node = Node(self.clock, vocabulary=RABBITMQ)
        self.vhost = node.add_vhost("/")
        users = UserStore()
        users.add_user("guest", "guest", frozenset({"administrator"}), loopback_only=True)
        users.set_permission("/", "guest")
        services = Services(node=node, users=users)
        self.hub = hub(session_factory(MQTTContext(services, self.clock)), self.clock)
        self.errors = Errors()
        logging.getLogger("pigeon").addHandler(self.errors)
        self.next_payload = 0
        self.next_pid = 1
        self.confirmed: dict[bytes, int] = {}  # payload -> QoS it was confirmed at
        self.sent_qos0: set[bytes] = set()
        self.unreleased: dict[int, Publish] = {}  # P's QoS 2 publishes before PUBREL
        self.received: dict[bytes, list[int]] = {}  # payload -> QoS of each delivery flow
        self.qos2_ids: dict[int, bytes] = {}  # S: QoS 2 packet id -> payload, until PUBCOMP
        self.outstanding: dict[int, int] = {}  # S: packet id -> QoS, until PUBACK/PUBCOMP
        self.acked: set[int] = set()  # S: QoS 2 ids it sent PUBREC for
        self.awaiting: dict[int, bytes] = {}  # P: packet id -> payload, until PUBACK/PUBREC
        self.aliases: set[int] = set()  # P's topic aliases on its current connection

    # -- clients -------------------------------------------------------------------

    @initialize(
        receive_maximum=st.integers(1, 4),
        sub_qos=st.sampled_from([1, 2]),
        p_version=st.sampled_from([MQTT_3_1_1, MQTT_5]),
    )
    def start(self, receive_maximum: int, sub_qos: int, p_version: int) -> None:
        self.receive_maximum = receive_maximum
        self.sub_qos = sub_qos
        self.p_version = p_version
        self.s = self._open_s(clean=True)
        self.s.send(Subscribe(1, ((FILTER, SubscriptionOptions(qos=sub_qos)),)))
        self.p = self._open(p_version, "fuzz-pub")

    def _open(self, version: int, client_id: str, **kw: object) -> Peer:
        peer = Peer(self.hub, self.clock, version)
        connect_packet = Connect(version, client_id, keepalive=0, **kw)  # type: ignore[arg-type]
        answers = peer.send(connect_packet)
        assert isinstance(answers[0], Connack), answers
        assert answers[0].reason_code == ReasonCode.SUCCESS
        if client_id == S_ID:
            self._absorb_s(answers[1:])
        return peer

    def _open_s(self, *, clean: bool) -> Peer:
        properties = Properties(receive_maximum=self.receive_maximum, session_expiry_interval=600)
        self.outstanding.clear()  # what was in flight comes again [MQTT-4.4.0-1]
        return self._open(MQTT_5, S_ID, clean_start=clean, properties=properties)

    def _absorb_s(self, packets: list[Packet]) -> None:
        for packet in packets:
            if isinstance(packet, Publish):
                self._delivery(packet)
            elif isinstance(packet, Pubrel):
                assert packet.packet_id in self.acked or packet.packet_id in self.qos2_ids
            elif isinstance(packet, Disconnect):
                assert packet.reason_code in CLOSE_REASONS, packet

    def _delivery(self, packet: Publish) -> None:
        assert packet.topic.startswith("f/")
        if packet.qos == 0:
            self.received.setdefault(packet.payload, []).append(0)
            return
        assert packet.packet_id is not None
        pid = packet.packet_id
        if pid in self.outstanding:
            # Only a resend of the same message may reuse an id still in flight.
            assert packet.dup and self.qos2_ids.get(pid) == packet.payload, packet
        self.outstanding[pid] = packet.qos
        if packet.qos == 2:
            known = self.qos2_ids.get(pid)
            if known is not None:  # the same flow again (DUP, after a reconnect)
                assert known == packet.payload and packet.dup, packet
                return
            self.qos2_ids[pid] = packet.payload
        self.received.setdefault(packet.payload, []).append(packet.qos)

    def _absorb_p(self, packets: list[Packet]) -> None:
        for packet in packets:
            if isinstance(packet, (Puback, Pubrec)):
                if packet.reason_code < 0x80:
                    payload = self.awaiting.pop(packet.packet_id, None)
                    if payload is not None:
                        self.confirmed[payload] = 1 if isinstance(packet, Puback) else 2
            elif isinstance(packet, Disconnect):
                assert packet.reason_code in CLOSE_REASONS, packet

    def _p(self, *packets: Packet) -> None:
        self._absorb_p(self.p.send(*packets))
        self._absorb_s(self.s.answers())

    # -- the publisher ---------------------------------------------------------------

    @precondition(lambda self: not self.p.closed)
    @rule(qos=st.sampled_from([0, 1, 2]), level=st.sampled_from(["a", "b/c"]))
    def publish(self, qos: int, level: str) -> None:
        payload = f"m{self.next_payload}".encode()
        self.next_payload += 1
        pid = None
        if qos:
            pid = self.next_pid
            self.next_pid = self.next_pid % 200 + 1
            if pid in self.unreleased:
                return  # still in use: skip rather than publish with an id in flight
            self.awaiting[pid] = payload
        else:
            self.sent_qos0.add(payload)
        packet = Publish("f/" + level, payload, qos=qos, packet_id=pid)
        if qos == 2:
            assert pid is not None
            self.unreleased[pid] = packet
        self._p(packet)

    @precondition(lambda self: not self.p.closed and self.p_version == MQTT_5)
    @rule(alias=st.integers(0, 66), with_topic=st.booleans())
    def publish_with_alias(self, alias: int, with_topic: bool) -> None:
        """5.0 Topic Alias: 1..64 (the CONNACK's maximum), set before use; else closed."""
        payload = f"m{self.next_payload}".encode()
        self.next_payload += 1
        pid = 201 + self.next_payload % 50  # apart from publish()'s ids
        valid = 1 <= alias <= 64 and (with_topic or alias in self.aliases)
        if valid:
            self.awaiting[pid] = payload
        packet = Publish(
            "f/alias" if with_topic else "",
            payload,
            qos=1,
            packet_id=pid,
            properties=Properties(topic_alias=alias),
        )
        self._p(packet)
        if valid and with_topic:
            self.aliases.add(alias)
        assert self.p.closed is not valid

    @precondition(lambda self: not self.p.closed and bool(self.unreleased))
    @rule(data=st.data())
    def resend_qos2(self, data: st.DataObject) -> None:
        """A QoS 2 PUBLISH again, with DUP: not routed twice [MQTT-4.3.3-10]."""
        pid = data.draw(st.sampled_from(sorted(self.unreleased)))
        original = self.unreleased[pid]
        self._p(
            Publish(original.topic, original.payload, qos=2, packet_id=pid, dup=True),
        )

    @precondition(lambda self: not self.p.closed)
    @rule(data=st.data(), known=st.booleans())
    def release(self, data: st.DataObject, known: bool) -> None:
        if known and self.unreleased:
            pid = data.draw(st.sampled_from(sorted(self.unreleased)))
            self.unreleased.pop(pid)
        else:
            pid = data.draw(st.integers(201, 300))  # never used: PUBCOMP 0x92 in 5.0
        answers = self.p.send(Pubrel(pid))
        self._absorb_p(answers)
        self._absorb_s(self.s.answers())

    @rule(bad=st.sampled_from(MALFORMED))
    def bad_publisher(self, bad: bytes) -> None:
        """P breaks the protocol: its connection closes; S carries on."""
        if self.p.closed:
            self.reconnect_publisher()
        self._p_bytes(bad)
        assert self.p.closed

    def _p_bytes(self, data: bytes) -> None:
        self._absorb_p(self.p.send_bytes(data))
        self._absorb_s(self.s.answers())

    @precondition(lambda self: self.p.closed)
    @rule()
    def reconnect_publisher(self) -> None:
        self.p = self._open(self.p_version, "fuzz-pub")
        self.unreleased.clear()
        self.awaiting = {}
        self.aliases.clear()

    # -- the subscriber --------------------------------------------------------------

    @precondition(lambda self: not self.s.closed and bool(self._unanswered()))
    @rule(data=st.data())
    def subscriber_acknowledges(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(self._unanswered()))
        if self.outstanding[pid] == 1:
            del self.outstanding[pid]
            self._absorb_s(self.s.send(Puback(pid)))
        else:
            self.acked.add(pid)
            answers = self.s.send(Pubrec(pid))
            assert Pubrel(pid) in answers, answers
            self._absorb_s(answers)

    def _unanswered(self) -> list[int]:
        return sorted(pid for pid in self.outstanding if pid not in self.acked)

    @precondition(lambda self: not self.s.closed and bool(self.acked))
    @rule(data=st.data())
    def subscriber_completes(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.acked)))
        self.acked.discard(pid)
        self.outstanding.pop(pid, None)
        self.qos2_ids.pop(pid, None)
        self._absorb_s(self.s.send(Pubcomp(pid)))

    @rule()
    def subscriber_drops_and_resumes(self) -> None:
        """The connection is lost; the persistent session resumes, in-flight ones again."""
        self.s.transport.abort()
        self.clock.run()
        self.s = self._open_s(clean=False)
        # QoS 2 deliveries S had acknowledged get PUBREL again; S answers as before.
        self._absorb_s(self.s.answers())

    @rule(seconds=st.sampled_from([0.5, 5.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._absorb_s(self.s.answers())

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def no_errors(self) -> None:
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]

    @invariant()
    def within_receive_maximum(self) -> None:
        if hasattr(self, "s") and not self.s.closed:
            assert len(self.outstanding) <= self.receive_maximum, self.outstanding

    @invariant()
    def counts_never_negative(self) -> None:
        queue = self.vhost.queues.get(queue_name(S_ID))
        if queue is not None:
            assert queue.unacked >= 0 and queue.message_count >= 0
            if hasattr(self, "s") and not self.s.closed:
                assert queue.unacked <= self.receive_maximum

    def teardown(self) -> None:
        logging.getLogger("pigeon").removeHandler(self.errors)
        if hasattr(self, "s"):
            self._settle()
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]

    def _settle(self) -> None:
        """S acknowledges everything until nothing more comes; then count what arrived."""
        if self.s.closed:
            self.s = self._open_s(clean=False)
        for _ in range(10_000):
            if self.acked:
                self.subscriber_completes_all()
            elif self._unanswered():
                pid = self._unanswered()[0]
                if self.outstanding[pid] == 1:
                    del self.outstanding[pid]
                    self._absorb_s(self.s.send(Puback(pid)))
                else:
                    self.acked.add(pid)
                    self._absorb_s(self.s.send(Pubrec(pid)))
            else:
                break
        for payload, qos in self.confirmed.items():
            flows = self.received.get(payload, [])
            assert flows, f"{payload!r}, confirmed at QoS {qos}, never delivered"
            if min(qos, self.sub_qos) == 2:
                assert len(flows) == 1, f"{payload!r} delivered {len(flows)} times at QoS 2"
        for payload in self.sent_qos0:
            assert len(self.received.get(payload, [])) <= 1

    def subscriber_completes_all(self) -> None:
        for pid in sorted(self.acked):
            self.acked.discard(pid)
            self.outstanding.pop(pid, None)
            self.qos2_ids.pop(pid, None)
            self._absorb_s(self.s.send(Pubcomp(pid)))


FAST = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_session_state_machine_under_random_packets() -> None:
    run_state_machine_as_test(SessionFuzz, settings=FAST)


@pytest.mark.slow
def test_the_session_state_machine_under_many_random_packets() -> None:
    long = settings(FAST, max_examples=400, stateful_step_count=80)
    run_state_machine_as_test(SessionFuzz, settings=long)


def test_a_resumed_session_resends_with_the_original_packet_ids() -> None:
    """Found by the machine above: deliveries in flight when the connection ended went out
    again with new packet ids, so a QoS 2 one looked new to the client and was delivered
    twice. They keep their ids [MQTT-4.4.0-1]."""
    machine = SessionFuzz()
    try:
        machine.start(receive_maximum=2, sub_qos=2, p_version=MQTT_5)
        for _ in range(2):
            machine.publish(qos=2, level="a")
        for pid in (1, 2):  # the first two complete: the next ids are 3 and 4
            machine.s.send(Pubrec(pid))
            machine.s.send(Pubcomp(pid))
        machine.qos2_ids.clear()
        machine.outstanding.clear()
        for _ in range(2):
            machine.publish(qos=2, level="a")
        first = dict(machine.qos2_ids)
        assert sorted(first) == [3, 4]
        machine.subscriber_drops_and_resumes()  # asserts a known id comes with its payload
        assert machine.qos2_ids == first  # and no new id came for them
    finally:
        machine.teardown()
