"""The in-process API on one virtual host: publish, get, consume, declare, inspect, wait.

Every action is a plain function run on the broker's loop (see
:mod:`pigeon.embedded.bridge`); the coroutines here await it from any loop,
and :class:`pigeon.embedded.sync.SyncAPI` waits for it from any other thread.
A change of durable state (declare, bind, delete, purge, vhosts) returns once
it is on disk, as its AMQP reply would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pigeon.core.binding import DestinationKind
from pigeon.core.message import Message
from pigeon.embedded.bridge import FALLBACK_RECHECK, nudge, on_loop, submit, watchers_of
from pigeon.embedded.delivery import DEFAULT_PREFETCH, ReceivedMessage, Subscription
from pigeon.embedded.properties import from_keywords
from pigeon.embedded.snapshot import QueueInfo, snapshot
from pigeon.errors import NotFound
from pigeon.operations.client import Client
from pigeon.operations.policy_definitions import parse_policy
from pigeon.storage.durable import until_durable

if TYPE_CHECKING:
    from pigeon.auth.authorization import Identity
    from pigeon.core.entry import Entry
    from pigeon.core.queue import Queue
    from pigeon.core.vhost import VirtualHost
    from pigeon.embedded.api import EmbeddedAPI
    from pigeon.embedded.sync import SyncAPI

T = TypeVar("T")
A = TypeVar("A")


class Operations:
    """The in-process API on one virtual host of a running broker."""

    def _place(self) -> tuple[EmbeddedAPI, str]:
        """The broker and the vhost name this API works on."""
        raise NotImplementedError

    # -- plumbing ----------------------------------------------------------------

    def _vhost(self) -> VirtualHost:
        broker, name = self._place()
        return broker._require_node().vhost(name)

    async def _run(self, action: Callable[[], T]) -> T:
        loop = self._place()[0]._broker_loop()
        if on_loop(loop):
            return action()
        return await asyncio.wrap_future(submit(loop, action))

    async def _run_waiting(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._place()[0]._broker_loop()
        if on_loop(loop):
            return await make()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))

    def _blocking(self, action: Callable[[], T]) -> T:
        loop = self._place()[0]._broker_loop()
        if on_loop(loop):
            return action()
        return submit(loop, action).result()

    def _blocking_waiting(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._place()[0]._broker_loop()
        if on_loop(loop):
            raise RuntimeError(
                "this would block the broker's own event loop: "
                "use the async API (await broker....) there"
            )
        return asyncio.run_coroutine_threadsafe(make(), loop).result()

    async def _durably(self, action: Callable[[], T]) -> T:
        """Run ``action`` (on the broker's loop) and return once what it wrote is on disk."""
        result = action()
        await until_durable(self._place()[0]._require_node().store)
        return result

    async def _run_durable(self, action: Callable[[], T]) -> T:
        return await self._run_waiting(lambda: self._durably(action))

    def _blocking_durable(self, action: Callable[[], T]) -> T:
        """:meth:`_blocking` for a change; on the broker's own loop it cannot wait for
        the disk, so there it returns before the change is on disk."""
        if on_loop(self._place()[0]._broker_loop()):
            return action()
        return self._blocking_waiting(lambda: self._durably(action))

    def _user(self) -> Identity | None:
        """Whose permissions this API is checked with; None: the program's own, unchecked
        (the rules that are not permissions apply all the same)."""
        return None

    def _client(self) -> Client:
        """The operations layer on this vhost: every action's checks are made there."""
        broker, _ = self._place()
        services = broker.context
        if services is None:
            raise RuntimeError("the broker is not running")
        return Client(services, self._vhost(), self._user())

    def _changed(self) -> None:
        nudge(self._place()[0]._require_node())

    # -- actions, run on the broker's loop ------------------------------------------

    def _publish_now(
        self, exchange: str, routing_key: str, body: bytes | str, properties: Mapping[str, Any]
    ) -> int:
        payload = body.encode() if isinstance(body, str) else bytes(body)
        message = Message(
            exchange,
            routing_key,
            from_keywords(properties),
            payload,
            published_at=time.monotonic_ns(),
        )
        routed = self._client().publish(message)
        self._changed()
        return routed

    def _get_now(self, queue: str, no_ack: bool) -> ReceivedMessage | None:
        core_queue, entry = self._client().get(queue, no_ack=no_ack)
        return self._received(core_queue, entry, no_ack)

    async def _get_waiting(self, queue: str, no_ack: bool) -> ReceivedMessage | None:
        """basic.get, waiting when the queue's messages are elsewhere (cluster mode)."""
        core_queue = self._client().queue_to_read(queue)
        answer: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        if core_queue.get_later(no_ack, answer.set_result):
            return self._received(core_queue, await answer, no_ack)
        return self._received(core_queue, core_queue.get(no_ack), no_ack)

    def _received(
        self, core_queue: Queue, entry: Entry | None, no_ack: bool
    ) -> ReceivedMessage | None:
        if entry is None:
            return None
        self._changed()
        return ReceivedMessage(
            entry, core_queue, self._place()[0]._broker_loop(), None, settled=no_ack
        )

    def _declare_queue_now(self, name: str, options: Mapping[str, Any]) -> str:
        declared = self._client().declare_queue(name, **options)
        self._changed()
        return declared.queue.name

    def _declare_exchange_now(self, name: str, type: str, options: Mapping[str, Any]) -> None:
        self._client().declare_exchange(name, type, **options)
        self._changed()

    def _delete_exchange_now(self, name: str, if_unused: bool) -> None:
        self._client().delete_exchange(name, if_unused=if_unused)
        self._changed()

    def _queue_now(self, name: str) -> QueueInfo:
        vhost = self._vhost()
        queue = vhost.queues.get(name)
        if queue is None:
            raise NotFound(f"no queue '{name}' in vhost '{vhost.name}'")
        return snapshot(queue)

    def _bind_now(
        self,
        queue: str,
        exchange: str,
        routing_key: str,
        arguments: Mapping[str, Any] | None,
        bind: bool,
    ) -> None:
        client = self._client()
        action = client.bind if bind else client.unbind
        action(exchange, queue, DestinationKind.QUEUE, routing_key, arguments)
        self._changed()

    def _delete_queue_now(self, name: str, if_unused: bool, if_empty: bool) -> int:
        count = self._client().delete_queue(name, if_unused=if_unused, if_empty=if_empty)
        self._changed()
        return count

    def _purge_now(self, name: str) -> int:
        count = self._client().purge(name)
        self._changed()
        return count

    def _describe(self) -> str:
        """The vhost's queues, counts and bindings: what a failed wait_for needs to show."""
        vhost = self._vhost()
        sources: dict[str, list[str]] = {}
        for binding in vhost.bindings():
            if binding.destination_kind is DestinationKind.QUEUE:
                sources.setdefault(binding.destination, []).append(
                    f"{binding.source!r} with {binding.routing_key!r}"
                )
        lines = [
            f"  {q.name}: ready={len(q.ready)} unacked={q.unacked} "
            f"consumers={len(q.consumers)}; bindings: "
            + (", ".join(sorted(sources.get(q.name, []))) or "none")
            for q in vhost.queues.values()
        ]
        return "queues now:\n" + "\n".join(lines) if lines else "no queues"

    async def _wait_on_loop(self, predicate: Callable[[Self], T], timeout: float) -> T:
        node = self._place()[0]._require_node()
        value = _check(predicate, self)
        if value:
            return value
        watchers, hooked = watchers_of(node)
        changed = asyncio.Event()
        watchers.append(changed.set)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if hooked:
                        await changed.wait()
                    else:
                        with suppress(TimeoutError):
                            await asyncio.wait_for(changed.wait(), FALLBACK_RECHECK)
                    changed.clear()
                    value = _check(predicate, self)
                    if value:
                        return value
        except TimeoutError:
            raise TimeoutError(
                f"condition not met within {timeout} s; {self._describe()}"
            ) from None
        finally:
            watchers.remove(changed.set)

    # -- the public API ------------------------------------------------------------------

    async def publish(
        self, exchange: str, routing_key: str, body: bytes | str, **properties: Any
    ) -> int:
        """Publish a message (``str`` bodies are UTF-8 encoded); properties by AMQP 0-9-1's
        names (see :mod:`pigeon.embedded.properties`). Returns how many queues it reached."""
        return await self._run(lambda: self._publish_now(exchange, routing_key, body, properties))

    async def get(self, queue: str, *, no_ack: bool = False) -> ReceivedMessage | None:
        """Take the next ready message, or None when the queue has none (``basic.get``)."""
        return await self._run_waiting(lambda: self._get_waiting(queue, no_ack))

    def consume(
        self, queue: str, *, prefetch: int = DEFAULT_PREFETCH, no_ack: bool = False
    ) -> Subscription:
        """An async iterator of the queue's messages, at most ``prefetch`` unsettled."""
        return Subscription(self, queue, prefetch, no_ack)

    async def declare_queue(
        self,
        name: str = "",
        *,
        durable: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare a queue (as ``queue.declare`` does); returns its name, generated if ''."""
        options = {
            "durable": durable,
            "auto_delete": auto_delete,
            "passive": passive,
            "arguments": arguments,
        }
        return await self._run_durable(lambda: self._declare_queue_now(name, options))

    async def declare_exchange(
        self,
        name: str,
        type: str = "direct",
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        passive: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        options = {
            "passive": passive,
            "durable": durable,
            "auto_delete": auto_delete,
            "internal": internal,
            "arguments": arguments,
        }
        await self._run_durable(lambda: self._declare_exchange_now(name, type, options))

    async def bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        await self._run_durable(
            lambda: self._bind_now(queue, exchange, routing_key, arguments, True)
        )

    async def unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        await self._run_durable(
            lambda: self._bind_now(queue, exchange, routing_key, arguments, False)
        )

    async def delete_queue(
        self, name: str, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        """Delete a queue; returns how many ready messages went with it."""
        return await self._run_durable(lambda: self._delete_queue_now(name, if_unused, if_empty))

    async def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        await self._run_durable(lambda: self._delete_exchange_now(name, if_unused))

    async def purge(self, queue: str) -> int:
        """Drop the queue's ready messages; returns how many."""
        return await self._run_durable(lambda: self._purge_now(queue))

    async def set_policy(
        self,
        name: str,
        pattern: str,
        definition: Mapping[str, Any],
        *,
        priority: int = 0,
        apply_to: str = "all",
        operator: bool = False,
    ) -> None:
        """Add or change a policy (``operator``: an operator policy) of this vhost, applied
        to its queues and exchanges at once, with the rules and texts of the HTTP API."""
        body = {
            "pattern": pattern,
            "definition": dict(definition),
            "priority": priority,
            "apply-to": apply_to,
        }
        await self._run_durable(lambda: self._set_policy_now(name, body, operator))

    async def clear_policy(self, name: str, *, operator: bool = False) -> None:
        """Remove a policy; raises NotFound if there is none of that name."""
        await self._run_durable(lambda: self._vhost().clear_policy(name, operator=operator))

    def _set_policy_now(self, name: str, body: Mapping[str, Any], operator: bool) -> None:
        vhost = self._vhost()
        vhost.set_policy(parse_policy(vhost.name, name, body, operator=operator), operator=operator)
        self._changed()

    def queues(self) -> list[QueueInfo]:
        """Snapshots of every queue of this vhost."""
        return self._blocking(lambda: [snapshot(q) for q in self._vhost().queues.values()])

    def queue(self, name: str) -> QueueInfo:
        """A snapshot of one queue: counts and ready messages. Raises NotFound if missing."""
        return self._blocking(lambda: self._queue_now(name))

    async def wait_for(self, predicate: Callable[[Self], T], timeout: float = 5.0) -> T:
        """Wait until ``predicate(self)`` is true, re-checking whenever the broker's state
        changes; returns its value. ``NotFound`` inside it counts as false (the queue may
        not exist yet). Raises ``TimeoutError`` with the vhost's queue counts."""
        return await self._run_waiting(lambda: self._wait_on_loop(predicate, timeout))

    @property
    def sync(self) -> SyncAPI:
        """The same API for code that is not async: ``broker.sync.publish(...)``."""
        from pigeon.embedded.sync import SyncAPI  # sync.py builds on this module

        return SyncAPI(self)


def _check(predicate: Callable[[A], T], api: A) -> T | None:
    try:
        return predicate(api)
    except NotFound:
        return None
