"""Snapshots of queues and their ready messages, for inspection and test assertions.

A snapshot is a copy taken on the broker's loop: reading or changing it never
touches the broker's state, so it is safe on any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pigeon.core.queue import Queue, QueueStats
from pigeon.embedded.properties import MessageProperties, view


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A ready message as it sits in a queue (a copy: changing it changes nothing)."""

    body: bytes
    properties: MessageProperties
    routing_key: str
    exchange: str
    redelivered: bool


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue at one moment: counts, settings, and its ready messages in delivery order."""

    name: str
    vhost: str
    ready: int
    unacked: int
    consumers: int
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: Mapping[str, Any]
    stats: QueueStats
    messages: tuple[QueuedMessage, ...]
    # The names of the policy and operator policy that apply, if any.
    policy: str | None = None
    operator_policy: str | None = None

    @property
    def total(self) -> int:
        """Ready plus unacknowledged: the queue's length in RabbitMQ's management UI."""
        return self.ready + self.unacked


def snapshot(queue: Queue) -> QueueInfo:
    messages = tuple(
        QueuedMessage(
            e.message.body,
            view(e.message.properties),
            e.message.routing_key,
            e.message.exchange,
            e.redelivered,
        )
        for e in queue.ready
    )
    return QueueInfo(
        name=queue.name,
        vhost=queue.vhost,
        ready=len(queue.ready),
        unacked=queue.unacked,
        consumers=len(queue.consumers),
        durable=queue.durable,
        exclusive=queue.exclusive,
        auto_delete=queue.auto_delete,
        arguments=dict(queue.arguments),
        stats=replace(queue.stats),  # a copy: the queue's own keeps counting
        messages=messages,
        policy=queue.policy.name if queue.policy is not None else None,
        operator_policy=(queue.operator_policy.name if queue.operator_policy is not None else None),
    )
