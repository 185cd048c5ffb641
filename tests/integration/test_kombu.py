"""kombu with the py-amqp transport (``pyamqp://``) against the broker.

RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check). Every wait is a
``drain_events``/``get`` with a timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import pytest
from kombu.message import Message
from kombu.simple import SimpleQueue

pytestmark = pytest.mark.rabbitmq

WAIT = 5.0


@pytest.fixture
def connection(amqp_url: str) -> Iterator[kombu.Connection]:
    url = "pyamqp://" + amqp_url.split("://", 1)[1]
    with kombu.Connection(url, connect_timeout=WAIT) as conn:
        conn.connect()
        yield conn


@pytest.fixture
def cleanup(connection: kombu.Connection) -> Iterator[list[kombu.Queue | kombu.Exchange]]:
    """Queues and exchanges appended here are deleted after the test."""
    entities: list[kombu.Queue | kombu.Exchange] = []
    yield entities
    channel = connection.channel()
    for entity in entities:
        entity.bind(channel).delete()
    channel.close()


class Inbox:
    """A consumer callback that keeps what it receives (acking only when told to)."""

    def __init__(self, ack: bool = True) -> None:
        self.ack = ack
        self.messages: list[Message] = []

    def __call__(self, body: Any, message: Message) -> None:
        self.messages.append(message)
        if self.ack:
            message.ack()

    @property
    def payloads(self) -> list[Any]:
        return [m.payload for m in self.messages]


def drain_until(conn: kombu.Connection, done: Callable[[], bool], timeout: float = WAIT) -> None:
    """Serve the connection until ``done()`` (TimeoutError when an event is late)."""
    while not done():
        conn.drain_events(timeout=timeout)


def nothing_more(conn: kombu.Connection, wait: float = 0.3) -> bool:
    """True when no event at all arrives within ``wait`` seconds."""
    try:
        conn.drain_events(timeout=wait)
    except TimeoutError:
        return True
    return False


# --- Producer / Consumer ---------------------------------------------------------------------


def test_producer_consumer_round_trip(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    exchange = kombu.Exchange(f"kx-{uid}", type="direct", durable=False)
    queue = kombu.Queue(f"kq-{uid}", exchange, routing_key="jobs", durable=False)
    cleanup += [queue, exchange]
    with kombu.Producer(connection, serializer="json") as producer:
        producer.publish(
            {"n": 1, "text": "hé"},
            exchange=exchange,
            routing_key="jobs",
            declare=[queue],
            serializer="json",
            headers={"h": "v"},
            correlation_id="c-1",
        )
        producer.publish(b"raw", exchange=exchange, routing_key="jobs", content_type="x/raw")
    inbox = Inbox()
    with kombu.Consumer(connection, [queue], callbacks=[inbox], accept=["json", "x/raw"]):
        drain_until(connection, lambda: len(inbox.messages) == 2)
    first, second = inbox.messages
    assert first.payload == {"n": 1, "text": "hé"}
    assert first.content_type == "application/json"
    assert first.headers == {"h": "v"}
    assert first.properties["correlation_id"] == "c-1"
    assert first.delivery_info["routing_key"] == "jobs"
    assert first.delivery_info["exchange"] == exchange.name
    assert (second.body, second.content_type) == (b"raw", "x/raw")


def test_fanout_exchange_copies_to_every_queue(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    exchange = kombu.Exchange(f"kfan-{uid}", type="fanout", durable=False)
    queues = [kombu.Queue(f"kfan-{i}-{uid}", exchange, durable=False) for i in range(2)]
    cleanup += [*queues, exchange]
    with kombu.Producer(connection, serializer="json") as producer:
        producer.publish("hello", exchange=exchange, routing_key="ignored", declare=queues)
    inbox = Inbox()
    with kombu.Consumer(connection, queues, callbacks=[inbox], accept=["json"]):
        drain_until(connection, lambda: len(inbox.messages) == 2)
    assert inbox.payloads == ["hello", "hello"]
    assert {m.delivery_info["routing_key"] for m in inbox.messages} == {"ignored"}


def test_topic_exchange_routes_by_pattern(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    exchange = kombu.Exchange(f"ktopic-{uid}", type="topic", durable=False)
    errors = kombu.Queue(f"kerr-{uid}", exchange, routing_key="*.error", durable=False)
    everything = kombu.Queue(f"kall-{uid}", exchange, routing_key="app.#", durable=False)
    cleanup += [errors, everything, exchange]
    with kombu.Producer(connection, serializer="json") as producer:
        for key in ("db.error", "app.web.info", "app.error"):
            producer.publish(key, exchange=exchange, routing_key=key, declare=[errors, everything])
    expectations = [
        (errors, ["db.error", "app.error"]),
        (everything, ["app.web.info", "app.error"]),
    ]
    for q, expected in expectations:
        inbox = Inbox()
        with kombu.Consumer(connection, [q], callbacks=[inbox], accept=["json"]):
            drain_until(connection, lambda inbox=inbox: len(inbox.messages) == 2)
        assert inbox.payloads == expected


def test_headers_exchange_with_binding_arguments(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    exchange = kombu.Exchange(f"khdr-{uid}", type="headers", durable=False)
    queue = kombu.Queue(
        f"khdr-{uid}",
        exchange,
        binding_arguments={"x-match": "all", "format": "pdf", "type": "report"},
        durable=False,
    )
    cleanup += [queue, exchange]
    with kombu.Producer(connection, serializer="json") as producer:
        for name, headers in (
            ("match", {"format": "pdf", "type": "report"}),
            ("partial", {"format": "pdf"}),
            ("extra", {"format": "pdf", "type": "report", "lang": "en"}),
        ):
            producer.publish(name, exchange=exchange, headers=headers, declare=[queue])
    inbox = Inbox()
    with kombu.Consumer(connection, [queue], callbacks=[inbox], accept=["json"]):
        drain_until(connection, lambda: len(inbox.messages) == 2)
        assert nothing_more(connection)
    assert inbox.payloads == ["match", "extra"]


# --- SimpleQueue -----------------------------------------------------------------------------


def test_simple_queue_put_get(connection: kombu.Connection, cleanup: list[Any], uid: str) -> None:
    with connection.SimpleQueue(f"ksimple-{uid}", serializer="json") as simple:
        assert isinstance(simple, SimpleQueue)
        cleanup += [simple.queue, simple.queue.exchange]
        for i in range(3):
            simple.put({"i": i})
        message = simple.get(block=True, timeout=WAIT)
        assert message.payload == {"i": 0}
        message.ack()
        rest = [simple.get(block=True, timeout=WAIT) for _ in range(2)]
        assert [m.payload for m in rest] == [{"i": 1}, {"i": 2}]
        for m in rest:
            m.ack()
        with pytest.raises(simple.Empty):
            simple.get(block=True, timeout=0.2)


def test_simple_queue_get_nowait_empty(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    with connection.SimpleQueue(f"ksimple-{uid}", serializer="json") as simple:
        cleanup += [simple.queue, simple.queue.exchange]
        with pytest.raises(simple.Empty):
            simple.get_nowait()
        simple.put("x")
        assert simple.get(block=True, timeout=WAIT).payload == "x"


# --- ack / reject / requeue ------------------------------------------------------------------


def test_requeue_redelivers_and_reject_discards(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    with connection.SimpleQueue(f"kack-{uid}", serializer="json") as simple:
        cleanup += [simple.queue, simple.queue.exchange]
        simple.put("task")
        first = simple.get(block=True, timeout=WAIT)
        assert first.delivery_info["redelivered"] is False
        first.requeue()
        second = simple.get(block=True, timeout=WAIT)
        assert (second.payload, second.delivery_info["redelivered"]) == ("task", True)
        second.reject()
        with pytest.raises(simple.Empty):
            simple.get(block=True, timeout=0.2)


def test_unacked_message_returns_when_channel_closes(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    queue = kombu.Queue(f"kunacked-{uid}", durable=False)
    cleanup.append(queue)
    with kombu.Producer(connection, serializer="json") as producer:
        producer.publish("pending", routing_key=queue.name, declare=[queue])
    channel = connection.channel()
    message = queue.bind(channel).get(no_ack=False)
    assert message is not None and message.payload == "pending"
    channel.close()  # never acknowledged
    again = queue.bind(connection.default_channel).get(no_ack=True)
    assert again is not None
    assert (again.payload, again.delivery_info["redelivered"]) == ("pending", True)


# --- QoS -------------------------------------------------------------------------------------


def publish_many(conn: kombu.Connection, queue: kombu.Queue, n: int) -> None:
    with kombu.Producer(conn, serializer="json") as producer:
        for i in range(n):
            producer.publish(i, routing_key=queue.name, declare=[queue])


def test_consumer_prefetch_count_limits_unacked(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    queue = kombu.Queue(f"kqos-{uid}", durable=False)
    cleanup.append(queue)
    publish_many(connection, queue, 5)
    inbox = Inbox(ack=False)
    with kombu.Consumer(connection, [queue], callbacks=[inbox], prefetch_count=2, accept=["json"]):
        drain_until(connection, lambda: len(inbox.messages) == 2)
        assert nothing_more(connection)
        inbox.messages[0].ack()
        drain_until(connection, lambda: len(inbox.messages) == 3)
        assert nothing_more(connection)
    assert inbox.payloads == [0, 1, 2]


def test_prefetch_as_celery_applies_it_caps_the_whole_channel(
    connection: kombu.Connection, cleanup: list[Any], uid: str
) -> None:
    # Celery sets its worker's prefetch with apply_global = not qos_semantics_matches_spec
    # (kombu reads server_properties: RabbitMQ 3.3-3.x -> False). Either way the user
    # expects one cap for all the worker's consumers on that channel, not one per consumer.
    queues = [kombu.Queue(f"kqos-{i}-{uid}", durable=False) for i in range(2)]
    cleanup.extend(queues)
    for q in queues:
        publish_many(connection, q, 3)
    channel = connection.channel()
    try:
        inbox = Inbox(ack=False)
        consumers = [
            kombu.Consumer(channel, [q], callbacks=[inbox], accept=["json"]) for q in queues
        ]
        apply_global = not connection.qos_semantics_matches_spec
        consumers[0].qos(prefetch_count=2, apply_global=apply_global)
        for consumer in consumers:
            consumer.consume()
        drain_until(connection, lambda: len(inbox.messages) == 2)
        assert nothing_more(connection), f"more than 2 unacked with apply_global={apply_global}"
    finally:
        channel.close()


def test_kombu_reads_rabbitmq_qos_semantics(connection: kombu.Connection) -> None:
    product = connection.connection.server_properties.get("product")
    if product != "RabbitMQ":
        pytest.skip(f"kombu's RabbitMQ version rule does not apply to {product!r}")
    # RabbitMQ 3.10: basic.qos(global=False) is per consumer, so kombu reports "not spec".
    assert connection.qos_semantics_matches_spec is False


def test_a_quorum_queue_counts_requeues_for_kombu(
    connection: kombu.Connection, cleanup: list[kombu.Queue | kombu.Exchange]
) -> None:
    name = f"quorum-kombu-{uuid.uuid4().hex[:10]}"
    queue = kombu.Queue(
        name, durable=True, queue_arguments={"x-queue-type": "quorum", "x-delivery-limit": 1}
    )
    cleanup.append(queue)
    with connection.Producer() as producer:
        producer.publish({"n": 1}, routing_key=name, declare=[queue], serializer="json")
    seen: list[tuple[bool, Any]] = []

    def requeue(_body: Any, message: Message) -> None:
        seen.append((message.delivery_info["redelivered"], message.headers.get("x-delivery-count")))
        message.requeue()

    with connection.Consumer(queue, callbacks=[requeue]):
        while len(seen) < 2:
            connection.drain_events(timeout=WAIT)
        # Over the limit now, with no dead-letter exchange: dropped, not delivered again.
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=0.3)
    assert seen == [(False, None), (True, 1)]
