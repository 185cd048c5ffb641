"""The in-process API for code that is not async (``broker.sync``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from pigeon.embedded.bridge import on_loop
from pigeon.embedded.delivery import DEFAULT_PREFETCH, ReceivedMessage, Subscription
from pigeon.embedded.snapshot import QueueInfo

if TYPE_CHECKING:
    from pigeon.embedded.operations import Operations

T = TypeVar("T")


class SyncAPI:
    """The in-process API for code that is not async: each call waits for the broker.

    Call it from any thread but the broker's own (``Broker.in_thread`` brokers, or
    an async broker used from a worker thread). Messages it returns are settled with
    ``message.ack()`` / ``message.reject(...)`` without ``await``.
    """

    def __init__(self, api: Operations) -> None:
        self._api = api

    def publish(self, exchange: str, routing_key: str, body: bytes | str, **properties: Any) -> int:
        return self._api._blocking(
            lambda: self._api._publish_now(exchange, routing_key, body, properties)
        )

    def get(self, queue: str, *, no_ack: bool = False) -> ReceivedMessage | None:
        api = self._api
        if on_loop(api._place()[0]._broker_loop()):
            # On the broker's own loop nothing may wait: what is here now (a cluster
            # queue's messages that this node has not fetched are not seen).
            return api._blocking(lambda: api._get_now(queue, no_ack))
        return api._blocking_waiting(lambda: api._get_waiting(queue, no_ack))

    def consume(
        self,
        queue: str,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        no_ack: bool = False,
        timeout: float | None = None,
    ) -> Iterator[ReceivedMessage]:
        """An iterator of the queue's messages. ``timeout``: raise ``TimeoutError`` when no
        message comes for that many seconds. The consumer stops when the loop is left."""
        subscription = Subscription(self._api, queue, prefetch, no_ack)
        self._api._blocking(subscription._start)
        return self._messages(subscription, timeout)

    def _messages(
        self, subscription: Subscription, timeout: float | None
    ) -> Iterator[ReceivedMessage]:
        try:
            while True:
                message = self._api._blocking_waiting(
                    lambda: asyncio.wait_for(subscription._next_on_loop(), timeout)
                )
                if message is None:
                    return
                yield message
        finally:
            with suppress(RuntimeError):  # the broker stopped first
                self._api._blocking(subscription._stop_now)

    def declare_queue(
        self,
        name: str = "",
        *,
        durable: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        options = {
            "durable": durable,
            "auto_delete": auto_delete,
            "passive": passive,
            "arguments": arguments,
        }
        return self._api._blocking_durable(lambda: self._api._declare_queue_now(name, options))

    def declare_exchange(
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
        self._api._blocking_durable(lambda: self._api._declare_exchange_now(name, type, options))

    def set_policy(
        self,
        name: str,
        pattern: str,
        definition: Mapping[str, Any],
        *,
        priority: int = 0,
        apply_to: str = "all",
        operator: bool = False,
    ) -> None:
        body = {
            "pattern": pattern,
            "definition": dict(definition),
            "priority": priority,
            "apply-to": apply_to,
        }
        self._api._blocking_durable(lambda: self._api._set_policy_now(name, body, operator))

    def clear_policy(self, name: str, *, operator: bool = False) -> None:
        self._api._blocking_durable(
            lambda: self._api._vhost().clear_policy(name, operator=operator)
        )

    def bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._api._blocking_durable(
            lambda: self._api._bind_now(queue, exchange, routing_key, arguments, True)
        )

    def unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._api._blocking_durable(
            lambda: self._api._bind_now(queue, exchange, routing_key, arguments, False)
        )

    def delete_queue(self, name: str, *, if_unused: bool = False, if_empty: bool = False) -> int:
        return self._api._blocking_durable(
            lambda: self._api._delete_queue_now(name, if_unused, if_empty)
        )

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        self._api._blocking_durable(lambda: self._api._delete_exchange_now(name, if_unused))

    def purge(self, queue: str) -> int:
        return self._api._blocking_durable(lambda: self._api._purge_now(queue))

    def queues(self) -> list[QueueInfo]:
        return self._api.queues()

    def queue(self, name: str) -> QueueInfo:
        return self._api.queue(name)

    def wait_for(self, predicate: Callable[[Operations], T], timeout: float = 5.0) -> T:
        """Block until ``predicate(api)`` is true (see :meth:`Operations.wait_for`)."""
        return self._api._blocking_waiting(lambda: self._api._wait_on_loop(predicate, timeout))
