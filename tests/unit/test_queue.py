"""The core queue and vhost on their own: ordering, consumers, limits, expiry.

Time is a manual clock so TTL and ``x-expires`` are tested exactly, without
sleeping; everything else is the real core.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime

import pytest

from pigeon.core.binding import DestinationKind
from pigeon.core.consumer import Consumer
from pigeon.core.message import Long, Message, Properties
from pigeon.core.queue import Entry, Queue
from pigeon.core.vhost import VirtualHost
from pigeon.errors import AccessRefused, PreconditionFailed
from pigeon.operations.policy_definitions import parse_policy
from pigeon.operations.vocabulary import RABBITMQ


class Clock:
    """A scheduler whose time only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, int, Timer]] = []
        self._ids = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(callback)
        heapq.heappush(self._timers, (self.now + delay, next(self._ids), timer))
        return timer

    def call_soon(self, callback: Callable[[], object]) -> Timer:
        return self.call_later(0, callback)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()


class Timer:
    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Recorder(Consumer):
    """A consumer with a prefetch window that records what it was given."""

    def __init__(self, tag: str, prefetch: int = 0, priority: int = 0) -> None:
        super().__init__(tag, priority=priority)
        self.prefetch = prefetch
        self.received: list[Entry] = []
        self.pending: list[Entry] = []
        self.cancelled = False

    def can_deliver(self) -> bool:
        return not self.prefetch or len(self.pending) < self.prefetch

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.received.append(entry)
        self.pending.append(entry)

    def cancelled_by_broker(self) -> None:
        self.cancelled = True

    def bodies(self) -> list[bytes]:
        return [e.message.body for e in self.received]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vhost(clock: Clock) -> VirtualHost:
    return VirtualHost("/", clock, vocabulary=RABBITMQ)


def publish(
    vhost: VirtualHost, key: str, body: bytes, exchange: str = "", **properties: object
) -> tuple[int, bool]:
    message = Message(exchange, key, Properties(**properties), body)  # type: ignore[arg-type]
    routed = vhost.publish(message, vhost.exchange(exchange))
    vhost.dispatch_due()  # as a protocol does after each batch of publishes
    return routed


def ready_bodies(queue: Queue) -> list[bytes]:
    return [e.message.body for e in queue.ready]


def test_requeued_messages_return_to_their_place(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    for body in (b"1", b"2", b"3", b"4"):
        publish(vhost, "q", body)
    first, second = queue.get(no_ack=False), queue.get(no_ack=False)
    assert first is not None and second is not None
    queue.requeue([second, first])
    assert ready_bodies(queue) == [b"1", b"2", b"3", b"4"]
    assert [e.redelivered for e in queue.ready] == [True, True, False, False]
    assert queue.unacked == 0


def test_round_robin_and_prefetch(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    a, b = Recorder("a", prefetch=2), Recorder("b", prefetch=2)
    queue.add_consumer(a)
    queue.add_consumer(b)
    for n in range(6):
        publish(vhost, "q", str(n).encode())
    assert a.bodies() == [b"0", b"2"]
    assert b.bodies() == [b"1", b"3"]
    assert queue.message_count == 2 and queue.unacked == 4
    queue.ack(a.pending.pop(0))
    queue.dispatch()
    assert a.bodies() == [b"0", b"2", b"4"]


def test_higher_priority_consumers_first(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    low, high = Recorder("low", prefetch=10), Recorder("high", prefetch=2, priority=5)
    queue.add_consumer(low)
    queue.add_consumer(high)
    for n in range(4):
        publish(vhost, "q", str(n).encode())
    assert high.bodies() == [b"0", b"1"]
    assert low.bodies() == [b"2", b"3"]


def test_single_active_consumer_keeps_the_first(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None, arguments={"x-single-active-consumer": True}).queue
    first, second = Recorder("first", prefetch=1), Recorder("second", priority=9)
    queue.add_consumer(first)
    queue.add_consumer(second)
    publish(vhost, "q", b"a")
    publish(vhost, "q", b"b")
    queue.remove_consumer(first)
    # The next consumer waits until the previous one's delivery is settled.
    assert second.bodies() == []
    queue.ack(first.pending.pop())
    assert first.bodies() == [b"a"] and second.bodies() == [b"b"]


def test_exclusive_consumer(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    queue.add_consumer(Recorder("a"))
    exclusive = Recorder("b")
    exclusive.exclusive = True
    with pytest.raises(AccessRefused, match="in exclusive use"):
        queue.add_consumer(exclusive)


def test_priority_queue_orders_by_priority_then_fifo(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None, arguments={"x-max-priority": 5}).queue
    for body, priority in ((b"a", 1), (b"b", 9), (b"c", 5), (b"d", 1), (b"e", None)):
        publish(vhost, "q", body, priority=priority)
    # 9 is capped to the maximum, 5; no priority means 0.
    assert ready_bodies(queue) == [b"b", b"c", b"a", b"d", b"e"]


def test_drop_head_dead_letters_the_oldest(vhost: VirtualHost) -> None:
    vhost.declare_exchange("dlx", "fanout")
    dead = vhost.declare_queue("dead", owner=None).queue
    vhost.bind("dlx", "dead", DestinationKind.QUEUE, "")
    queue = vhost.declare_queue(
        "q", owner=None, arguments={"x-max-length": 2, "x-dead-letter-exchange": "dlx"}
    ).queue
    for body in (b"1", b"2", b"3"):
        publish(vhost, "q", body)
    assert ready_bodies(queue) == [b"2", b"3"]
    assert ready_bodies(dead) == [b"1"]
    death = next(iter(dead.ready)).message.properties.header_table()
    assert death["x-death"][0]["reason"] == "maxlen"
    # Typed as RabbitMQ sends them: the count a 64-bit integer, the time a timestamp.
    assert type(death["x-death"][0]["count"]) is Long
    assert isinstance(death["x-death"][0]["time"], datetime)
    assert death["x-first-death-queue"] == "q"


def test_reject_publish_refuses_new_messages(vhost: VirtualHost) -> None:
    vhost.declare_queue(
        "q", owner=None, arguments={"x-max-length-bytes": 3, "x-overflow": "reject-publish"}
    )
    assert publish(vhost, "q", b"12") == (1, False)
    assert publish(vhost, "q", b"34") == (1, True)


def test_ttl_expires_at_the_head_and_dead_letters(vhost: VirtualHost, clock: Clock) -> None:
    vhost.declare_queue("dead", owner=None)
    queue = vhost.declare_queue(
        "q",
        owner=None,
        arguments={
            "x-message-ttl": 100,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dead",
        },
    ).queue
    publish(vhost, "q", b"old")
    clock.advance(0.05)
    publish(vhost, "q", b"new", ttl=500)
    clock.advance(0.06)
    assert ready_bodies(queue) == [b"new"]
    assert ready_bodies(vhost.queue("dead")) == [b"old"]
    clock.advance(0.1)
    assert queue.message_count == 0
    assert queue.stats.expired == 2


def test_zero_ttl_delivers_now_or_never(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None, arguments={"x-message-ttl": 0}).queue
    publish(vhost, "q", b"nobody there")
    assert queue.message_count == 0
    consumer = Recorder("c")
    queue.add_consumer(consumer)
    publish(vhost, "q", b"taken")
    assert consumer.bodies() == [b"taken"]


def test_unused_queue_expires(vhost: VirtualHost, clock: Clock) -> None:
    vhost.declare_queue("q", owner=None, arguments={"x-expires": 1000})
    clock.advance(0.9)
    vhost.declare_queue("q", owner=None, arguments={"x-expires": 1000})  # a use
    clock.advance(0.9)
    assert "q" in vhost.queues
    clock.advance(0.2)
    assert "q" not in vhost.queues


def test_auto_delete_after_last_consumer(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None, auto_delete=True).queue
    consumer = Recorder("c")
    queue.add_consumer(consumer)
    queue.remove_consumer(consumer)
    assert "q" not in vhost.queues


def test_deleting_a_queue_cancels_its_consumers(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    consumer = Recorder("c")
    queue.add_consumer(consumer)
    publish(vhost, "q", b"x")
    assert vhost.delete_queue("q", owner=None) == 0
    assert consumer.cancelled


def test_dead_letter_cycle_is_broken(vhost: VirtualHost, clock: Clock) -> None:
    queue = vhost.declare_queue(
        "q", owner=None, arguments={"x-message-ttl": 10, "x-dead-letter-exchange": ""}
    ).queue
    publish(vhost, "q", b"x")
    # Back to the queue it died in with no rejection on the way: RabbitMQ drops it
    # rather than let it cycle forever.
    clock.advance(0.02)
    assert queue.message_count == 0
    assert queue.stats.expired == 1


def test_invalid_arguments_use_rabbitmq_texts(vhost: VirtualHost) -> None:
    with pytest.raises(PreconditionFailed, match=r"invalid arg 'x-message-ttl'.*value_negative"):
        vhost.declare_queue("q", owner=None, arguments={"x-message-ttl": -1})
    with pytest.raises(PreconditionFailed, match="inequivalent arg 'durable'"):
        vhost.declare_queue("r", owner=None)
        vhost.declare_queue("r", owner=None, durable=True)


def test_e2e_bindings_alternate_exchange_and_cc(vhost: VirtualHost) -> None:
    vhost.declare_exchange("front", "topic", arguments={"alternate-exchange": "spare"})
    vhost.declare_exchange("back", "fanout")
    vhost.declare_exchange("spare", "fanout")
    for name in ("orders", "unrouted", "cc"):
        vhost.declare_queue(name, owner=None)
    vhost.bind("front", "back", DestinationKind.EXCHANGE, "order.*")
    vhost.bind("back", "orders", DestinationKind.QUEUE, "")
    vhost.bind("spare", "unrouted", DestinationKind.QUEUE, "")
    assert publish(vhost, "order.new", b"1", exchange="front") == (1, False)
    assert publish(vhost, "other", b"2", exchange="front") == (1, False)
    assert ready_bodies(vhost.queue("orders")) == [b"1"]
    assert ready_bodies(vhost.queue("unrouted")) == [b"2"]
    assert publish(vhost, "orders", b"3", headers=(("BCC", ["cc"]),)) == (2, False)
    copy = next(iter(vhost.queue("cc").ready)).message
    assert copy.properties.headers == ()


class Batcher(Recorder):
    """A consumer that counts its room and records each hand-over's size."""

    def __init__(self, tag: str, prefetch: int) -> None:
        super().__init__(tag, prefetch)
        self.handovers: list[int] = []

    def room(self) -> int:
        return self.prefetch - len(self.pending)

    def deliver_many(self, queue: Queue, entries: list[Entry]) -> None:
        self.handovers.append(len(entries))
        super().deliver_many(queue, entries)


def test_a_batch_of_publishes_is_handed_over_at_once(vhost: VirtualHost) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    consumer = Batcher("c", prefetch=4)
    queue.add_consumer(consumer)
    for body in (b"1", b"2", b"3", b"4", b"5"):
        message = Message("", "q", Properties(), body)
        vhost.publish(message, vhost.exchange(""))
    assert consumer.received == []  # waiting for the end of the publisher's batch
    vhost.dispatch_due()
    assert consumer.bodies() == [b"1", b"2", b"3", b"4"]
    assert consumer.handovers == [4]  # one call, cut at the consumer's room
    assert ready_bodies(queue) == [b"5"]


def test_messages_left_due_are_handed_over_on_the_next_turn(
    vhost: VirtualHost, clock: Clock
) -> None:
    queue = vhost.declare_queue("q", owner=None).queue
    consumer = Batcher("c", prefetch=10)
    queue.add_consumer(consumer)
    vhost.publish(Message("", "q", Properties(), b"x"), vhost.exchange(""))
    clock.advance(0)  # the publisher never called dispatch_due: the backstop does
    assert consumer.bodies() == [b"x"]


@pytest.mark.parametrize("arguments", [{"x-max-length": 1}, {"x-message-ttl": 0}])
def test_limited_queues_hand_over_each_message_at_once(
    vhost: VirtualHost, arguments: dict[str, object]
) -> None:
    # Otherwise a batch would meet the length limit or the zero TTL before the
    # consumer that had room for it.
    queue = vhost.declare_queue("q", owner=None, arguments=arguments).queue
    consumer = Batcher("c", prefetch=10)
    queue.add_consumer(consumer)
    for body in (b"1", b"2", b"3"):
        vhost.publish(Message("", "q", Properties(), body), vhost.exchange(""))
    assert consumer.bodies() == [b"1", b"2", b"3"]


def test_a_run_of_publishes_goes_whole_or_not_at_all(vhost: VirtualHost) -> None:
    plain = vhost.declare_queue("plain", owner=None).queue
    limited = vhost.declare_queue("limited", owner=None, arguments={"x-max-length": 1}).queue
    vhost.declare_exchange("fan", "fanout")
    vhost.bind("fan", "plain", DestinationKind.QUEUE, "")
    run = [Message("", "plain", Properties(), b"%d" % n) for n in range(3)]
    assert vhost.publish_run(run, vhost.exchange(""))
    assert ready_bodies(plain) == [b"0", b"1", b"2"]
    # A queue with a length limit needs one message at a time: nothing is done.
    vhost.bind("fan", "limited", DestinationKind.QUEUE, "")
    fanned = [Message("fan", "", Properties(), b"x%d" % n) for n in range(3)]
    assert not vhost.publish_run(fanned, vhost.exchange("fan"))
    assert ready_bodies(plain) == [b"0", b"1", b"2"] and ready_bodies(limited) == []
    # Nothing routed: the general path reports it (mandatory returns, counters).
    assert not vhost.publish_run([Message("", "nowhere", Properties(), b"y")], vhost.exchange(""))


AT_LEAST_ONCE = {
    "x-queue-type": "quorum",
    "x-dead-letter-exchange": "dlx",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def reject_one(queue: Queue) -> None:
    entry = queue.get(no_ack=False)
    assert entry is not None
    queue.reject(entry)


def test_at_least_once_dead_letters_wait_for_a_queue_that_takes_them(
    vhost: VirtualHost, clock: Clock
) -> None:
    vhost.declare_exchange("dlx", "fanout")
    queue = vhost.declare_queue("q", owner=None, durable=True, arguments=AT_LEAST_ONCE).queue
    publish(vhost, "q", b"dead")
    reject_one(queue)
    assert queue.dead_letters_pending == 1  # routed nowhere: kept
    target = vhost.declare_queue(
        "dead",
        owner=None,
        durable=True,
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    ).queue
    vhost.bind("dlx", "dead", DestinationKind.QUEUE, "")
    clock.advance(1.0)
    assert queue.dead_letters_pending == 1  # the target refused it: kept
    vhost.delete_queue("dead", owner=None)
    target = vhost.declare_queue("dead", owner=None, durable=True).queue
    vhost.bind("dlx", "dead", DestinationKind.QUEUE, "")
    clock.advance(1.0)
    assert queue.dead_letters_pending == 0 and queue.stats.dead_lettered_rejected == 1
    got = target.get(no_ack=True)
    assert got is not None and got.message.body == b"dead"


def test_at_least_once_needs_reject_publish_and_a_deleted_queue_stops_retrying(
    vhost: VirtualHost, clock: Clock
) -> None:
    vhost.declare_exchange("dlx", "fanout")
    fallback = vhost.declare_queue(
        "once", owner=None, durable=True, arguments={**AT_LEAST_ONCE, "x-overflow": "drop-head"}
    ).queue
    publish(vhost, "once", b"lost")
    reject_one(fallback)
    assert fallback.dead_letters_pending == 0  # at most once: gone
    queue = vhost.declare_queue("q", owner=None, durable=True, arguments=AT_LEAST_ONCE).queue
    publish(vhost, "q", b"dead")
    reject_one(queue)
    vhost.delete_queue("q", owner=None)
    assert queue.dead_letters_pending == 0
    vhost.declare_queue("dead", owner=None, durable=True)
    vhost.bind("dlx", "dead", DestinationKind.QUEUE, "")
    clock.advance(2.0)
    assert vhost.queues["dead"].message_count == 0


def test_the_delivery_limit_is_read_from_one_place(vhost: VirtualHost) -> None:
    quorum = {"x-queue-type": "quorum"}
    assert (
        vhost.declare_queue(
            "a", owner=None, durable=True, arguments={**quorum, "x-delivery-limit": 3}
        ).queue.delivery_limit
        == 3
    )
    # Not validated (RabbitMQ 3.10): a value that is not an integer limits nothing.
    assert (
        vhost.declare_queue(
            "b", owner=None, durable=True, arguments={**quorum, "x-delivery-limit": "3"}
        ).queue.delivery_limit
        is None
    )


def test_policies_change_a_quorum_queue_in_place(vhost: VirtualHost, clock: Clock) -> None:
    vhost.declare_exchange("dlx", "fanout")
    queue = vhost.declare_queue(
        "q", owner=None, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 5}
    ).queue
    assert queue.delivery_limit == 5
    vhost.set_policy(
        parse_policy(
            "/",
            "p",
            {
                "pattern": "^q$",
                "definition": {
                    "delivery-limit": 2,
                    "dead-letter-exchange": "dlx",
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                },
            },
        )
    )
    assert queue.delivery_limit == 2  # the smaller
    publish(vhost, "q", b"dead")
    reject_one(queue)
    assert queue.dead_letters_pending == 1  # at least once now: nothing takes it yet
    # reject-publish-dlx is drop-head on a quorum queue; at-least-once falls back, and
    # what waited goes at most once.
    vhost.set_policy(
        parse_policy(
            "/",
            "p",
            {
                "pattern": "^q$",
                "definition": {"dead-letter-exchange": "dlx", "overflow": "reject-publish-dlx"},
            },
        )
    )
    assert queue.args.overflow.value == "drop-head"
    assert queue.dead_letters_pending == 0 and queue.delivery_limit == 5
    vhost.clear_policy("p")
    assert queue.args.dead_letter_exchange is None
