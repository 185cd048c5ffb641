"""Direct reply-to: a reply address names a requester waiting on some connection.

RabbitMQ's ``amq.rabbitmq.reply-to``: a requester consumes from the pseudo-queue,
publishes with ``reply_to`` set to it, and gets a private address back; a reply
published to that address goes straight to the requester, through no queue. The
registry knows requesters only as :class:`ReplyTarget`: the AMQP channel is one,
and an MQTT session (MQTT 5 response topics) can be another.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from pigeon.core.message import Message

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_TO_PREFIX = REPLY_TO + "."


class ReplyTarget(Protocol):
    """A requester waiting for replies, on whatever protocol it speaks."""

    def deliver_reply(self, message: Message) -> None:
        """Hand a reply to the requester, now (no queue, no acknowledgement)."""
        ...


class ReplyRegistry:
    """Reply addresses (``amq.rabbitmq.reply-to.<token>``) -> the target awaiting replies."""

    def __init__(self) -> None:
        self._targets: dict[str, ReplyTarget] = {}

    def register(self, target: ReplyTarget) -> str:
        key = REPLY_TO_PREFIX + secrets.token_urlsafe(24)
        self._targets[key] = target
        return key

    def exists(self, key: str) -> bool:
        return key in self._targets

    def unregister(self, key: str) -> None:
        self._targets.pop(key, None)

    def deliver(self, key: str, message: Message) -> int:
        """Hand a message to the target waiting on ``key``: 1, or 0 if none waits."""
        target = self._targets.get(key)
        if target is None:
            return 0
        target.deliver_reply(message)
        return 1
