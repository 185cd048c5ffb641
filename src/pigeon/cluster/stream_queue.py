"""A durable queue whose messages live in a JetStream stream (cluster mode).

A :class:`~pigeon.core.queue.Queue` to the rest of the broker (the vhost, the
operations layer and every protocol use it unchanged), whose messages are not kept
here: an enqueue publishes to the stream (``Nats-Msg-Id``; the confirm waits for the
PubAck through the ledger), and the :class:`~pigeon.cluster.puller.Puller` fetches
from the shared durable consumer as many messages as the local consumers have room
for. Fetched messages are leased: held in ``ready`` until a consumer takes them, then
unacked until settled. Settling maps to JetStream's: ack -> ``+ACK``, requeue (nack,
reject, a channel or connection closing) -> ``-NAK`` (back at once, redelivered
from the delivery count), reject without requeue and expiry -> ``+TERM`` after the
dead-lettered copy (if any) is acknowledged by its own stream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pigeon.cluster.puller import PULL_WAIT, Puller
from pigeon.cluster.streams import (
    CONSUMER_EXISTS,
    CONSUMER_NOT_FOUND,
    STREAM_NOT_FOUND,
    StreamNames,
    consumer_config,
    decode_payload,
    encode_payload,
    placement,
    stream_config,
)
from pigeon.core.consumer import UNLIMITED, Consumer
from pigeon.core.entry import Entry
from pigeon.core.message import Message
from pigeon.core.options import QUORUM
from pigeon.core.queue import Queue
from pigeon.core.queue_api import QueueHandle
from pigeon.storage.codec import CodecError

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from pigeon.cluster.queues import ClusterQueues


log = logging.getLogger(__name__)

ACK, NAK, TERM = b"+ACK", b"-NAK", b"+TERM"  # (and "+WPI": see puller.py)
# Seconds a basic.get waits for the stream before it answers empty.
GET_WAIT = 0.25


class StreamQueue(Queue):
    def __init__(self, name: str, vhost: str, *, cluster: ClusterQueues, **kwargs: Any) -> None:
        kwargs["store"] = None  # nothing of it goes to the local store
        super().__init__(name, vhost, **kwargs)
        self.type = self.args.type  # classic or quorum: both are streams here
        # Quorum queues name the count on deliveries (x-delivery-count), classic don't.
        self.counts_deliveries = self.type == QUORUM
        self.names = StreamNames.of(vhost, name)
        self.cluster = cluster
        # Stream sequence -> reply subject of the delivery (its lease), until settled.
        self.leases: dict[int, str] = {}
        self.backlog = 0  # ready in the stream, as last heard (consumer's num_pending)
        self.wants_get = 0
        self.epoch = 0  # purges so far (see take)
        self.puller = Puller(self, cluster)
        cluster.queues.add(self)
        created = cluster.write(self, "create", self._create)
        self.puller.start(created)

    def _options_changed(self) -> None:
        self._limited = self.takes_runs = False

    async def _create(self) -> None:
        names, cluster = self.names, self.cluster
        created = await cluster.create_stream(stream_config(names, cluster.replicas))
        self.placement = placement(created) or self.placement
        await cluster.api(
            f"$JS.API.CONSUMER.CREATE.{names.stream}.{names.consumer}",
            {
                "stream_name": names.stream,
                "config": consumer_config(names, cluster.settings.ack_wait),
            },
            ok_errors=CONSUMER_EXISTS,
        )

    @property
    def message_count(self) -> int:
        return self.backlog + len(self.ready)

    def alive(self) -> bool:
        return not self.deleted

    # -- publishing --------------------------------------------------------------------

    def enqueue(self, message: Message, now: float, due: list[QueueHandle] | None = None) -> bool:
        if self.deleted:
            return False
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        names = self.names
        self.cluster.publisher.publish(
            names.subject, encode_payload(message), names.stream, self.alive
        )
        self.stats.published += 1
        self.backlog += 1
        if self.consumers:
            self.puller.want()
        return True

    def enqueue_run(self, messages: list[Message], now: float, due: list[QueueHandle]) -> None:
        for message in messages:
            self.enqueue(message, now)

    def dispatch_due(self) -> None:
        self._due = False

    # -- fetched messages ----------------------------------------------------------------

    def credit(self) -> int:
        """How many messages to ask the stream for: the local consumers' room (each
        capped at one batch) less what is fetched and not handed over yet."""
        batch = self.cluster.settings.batch
        room = self.wants_get
        for consumer in self.consumers:
            if consumer.can_deliver():
                room += min(consumer.room(), batch) if consumer.room() != UNLIMITED else batch
        return min(room, batch) - len(self.ready)

    def take(self, fetched: list[Msg], epoch: int) -> None:
        """Fetched deliveries: into ready (expired ones discarded), then to consumers.
        ``epoch``: :attr:`epoch` when the pull was asked for; a pull answered across a
        purge may hold purged messages: they go back, uncounted (a nak of a purged
        message does nothing)."""
        if epoch != self.epoch:
            for msg in fetched:
                self.cluster.publisher.send(msg.reply, NAK)
            return
        now = self._scheduler.time()
        for msg in fetched:
            if self.deleted:
                return
            self._take_one(msg, now)
        if not self.consumers and not self.wants_get:
            # A pull answered after the last consumer left: back for the other nodes.
            self._give_back()
        self.dispatch(now)

    def _take_one(self, msg: Msg, now: float) -> None:
        meta = msg.metadata
        self.backlog = meta.num_pending
        seq = meta.sequence.stream
        try:
            message = decode_payload(msg.data)
        except CodecError as error:
            log.error("dropping message %d of %s: %s", seq, self.names.stream, error)
            self.cluster.publisher.send(msg.reply, TERM)
            return
        entry = Entry(message, seq, 0, None, now)
        entry.redelivered = meta.num_delivered > 1
        self.leases[seq] = msg.reply
        if self.counts_deliveries:
            entry.delivery_count = meta.num_delivered - 1  # returns so far
            limit = self.args.delivery_limit
            if limit is not None and entry.delivery_count > limit:
                # Returned past the limit without a requeue here (a front-end that
                # died, a give-back): dead-lettered or dropped on its way out.
                self.stats.dropped += 1
                self._discard(entry, "delivery_limit")
                return
        ttl = _ttl(message.properties.ttl, self.args.message_ttl)
        if ttl is not None:
            # Counted from the stream's timestamp, as RabbitMQ counts from enqueue.
            age = time.time() - meta.timestamp.timestamp()
            entry.expires_at = now + ttl / 1000 - age
            if entry.expires_at <= now:
                self.stats.expired += 1
                self._discard(entry, "expired")
                return
        self.ready.append(entry)

    def _hand_over(self, consumer: Consumer, batch: list[Entry]) -> None:
        if consumer.no_ack:
            self._settle(batch, ACK)
        super()._hand_over(consumer, batch)

    def _settle(self, entries: Iterable[Entry], verdict: bytes) -> None:
        send = self.cluster.publisher.send
        leases = self.leases
        for entry in entries:
            reply = leases.pop(entry.seq, None)
            if reply is not None:
                send(reply, verdict)

    def _forget(self, entry: Entry) -> None:
        """Gone for good (rejected, expired): terminated once whatever was published
        before (the dead-lettered copy, published right after this) is acknowledged."""
        reply = self.leases.pop(entry.seq, None)
        if reply is not None:
            sync = self.cluster.ledger.sync
            send = functools.partial(self.cluster.publisher.send, reply, TERM)
            self._scheduler.call_soon(functools.partial(sync, send))

    # -- consuming and settling ----------------------------------------------------------

    def dispatch(self, now: float | None = None) -> None:
        super().dispatch(now)
        if self.consumers and not self.deleted:
            self.puller.want()

    def remove_consumer(self, consumer: Consumer) -> None:
        super().remove_consumer(consumer)
        if not self.consumers and not self.deleted and self.ready:
            self._give_back()

    def _give_back(self) -> None:
        """Fetched messages nobody here will take: back to the stream for other nodes."""
        removed, _ = self.ready.clear()
        self.backlog += len(removed)
        self._settle(removed, NAK)

    def give_back_all(self) -> None:
        """This front-end leaves: every lease (fetched or delivered, unacked) back to
        the stream now rather than after ack_wait."""
        self.ready.clear()
        send = self.cluster.publisher.send
        leases, self.leases = self.leases, {}
        for reply in leases.values():
            send(reply, NAK)

    def get(self, no_ack: bool) -> Entry | None:
        """From what is fetched already; :meth:`get_async` waits for the stream."""
        entry = super().get(no_ack)
        if entry is not None and no_ack:
            self._settle((entry,), ACK)
        return entry

    def get_later(self, no_ack: bool, done: Callable[[Entry | None], object]) -> bool:
        """basic.get with nothing fetched here: pulled from the stream, answered later."""
        if self.ready:
            return False
        task = asyncio.get_running_loop().create_task(self._get_for(no_ack, done))
        self.cluster.track(task)
        return True

    async def _get_for(self, no_ack: bool, done: Callable[[Entry | None], object]) -> None:
        try:
            entry = await self.get_async(no_ack)
        except Exception as error:  # the stream is unreachable: answered empty
            log.warning("basic.get from %s: %s", self.names.stream, error)
            entry = None
        done(entry)

    async def get_async(self, no_ack: bool, timeout: float = GET_WAIT) -> Entry | None:
        """basic.get: one message from the stream, or None when it has none ready."""
        if not self.ready:
            await self.puller.fetch_for_get(timeout)
        return self.get(no_ack)

    def ack_many(self, entries: Sequence[Entry]) -> None:
        super().ack_many(entries)
        self._settle(entries, ACK)

    def requeue(self, entries: Iterable[Entry]) -> None:
        entries = list(entries)
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        self.unacked -= len(entries)
        limit = self.args.delivery_limit if self.counts_deliveries else None
        if limit is not None:
            # A quorum queue's return past its delivery limit (rabbit_fifo): dead-lettered
            # or dropped now, terminated in the stream (see _forget), not sent back.
            kept = []
            for entry in entries:
                if entry.delivery_count + 1 > limit:
                    self.stats.dropped += 1
                    self._discard(entry, "delivery_limit")
                else:
                    kept.append(entry)
            entries = kept
        self.backlog += len(entries)
        self._settle(entries, NAK)
        self.dispatch()

    # -- the whole queue ---------------------------------------------------------------

    def _on_unused_timer(self) -> None:
        """``x-expires`` ran out here: the queue goes only if no front-end uses it."""
        self._unused_timer = None
        if not self.consumers and not self.deleted:
            task = asyncio.get_running_loop().create_task(self._expire_if_unused())
            self.cluster.track(task)

    async def _expire_if_unused(self) -> None:
        """Unused everywhere: no pull waiting at the stream and nothing delivered and
        unacked, seen twice a pull's wait apart (a consuming front-end renews its pull
        at once, so one look could fall between two). Else the countdown restarts."""
        for look in range(2):
            if look:
                await asyncio.sleep(PULL_WAIT)
            if not await self._unused_at_stream():
                if not self.deleted:
                    self.touch()
                return
        if not self.consumers and not self.deleted:
            self._hooks.queue_unused(self)

    async def _unused_at_stream(self) -> bool:
        names = self.names
        try:
            info = await self.cluster.api(
                f"$JS.API.CONSUMER.INFO.{names.stream}.{names.consumer}",
                None,
                ok_errors=STREAM_NOT_FOUND + CONSUMER_NOT_FOUND,
            )
        except Exception:  # unknown: not unused
            return False
        # (Gone already: another front-end expired it first.)
        used = "error" not in info and (info.get("num_waiting") or info.get("num_ack_pending"))
        return not used and not self.consumers and not self.deleted

    def purge(self, *, record: bool = True) -> int:
        """Drop the ready messages: the stream's (purged there) and those fetched here.
        Messages delivered and not acked are in the stream too: a purge takes them
        (a gap: RabbitMQ keeps them), and their later ack finds nothing to do."""
        count = self.message_count
        self.epoch += 1
        removed, _ = self.ready.clear()
        for entry in removed:
            self.leases.pop(entry.seq, None)
        self.backlog = 0
        if self._watchers:
            self._scheduler.call_soon(self._changed)
        names = self.names
        self.cluster.write(
            self, "purge", lambda: self.cluster.api(f"$JS.API.STREAM.PURGE.{names.stream}", {})
        )
        return count

    def delete(self) -> int:
        count = self.backlog + len(self.ready)
        super().delete()
        self.leases.clear()
        self.backlog = 0
        self.puller.stop()
        self.cluster.queues.discard(self)
        names = self.names
        self.cluster.write(
            self,
            "delete",
            lambda: self.cluster.api(
                f"$JS.API.STREAM.DELETE.{names.stream}", None, ok_errors=STREAM_NOT_FOUND
            ),
        )
        return count


def _ttl(message_ttl: int | None, queue_ttl: int | None) -> int | None:
    if message_ttl is None:
        return queue_ttl
    return message_ttl if queue_ttl is None else min(message_ttl, queue_ttl)
