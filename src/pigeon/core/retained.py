"""Retained messages of a virtual host: the last retained message of each MQTT topic.

Protocol-neutral: topics are MQTT topic names (``/``-separated, as the client wrote
them), messages are the core's :class:`~pigeon.core.message.Message`. The MQTT session
calls :meth:`RetainedMessages.retain` for a PUBLISH with RETAIN=1 (through
``operations.Client.retain``, which checks permissions) and
:meth:`RetainedMessages.match` for a new subscription (``Client.retained``); it still
routes the PUBLISH itself as usual, retained or not.

Rules, decided here so that every entry point gets the same answer:

- An empty body clears the topic's retained message and nothing is kept
  ([MQTT-3.3.1-6], [MQTT-3.3.1-7] in 5.0; [MQTT-3.3.1-10], [MQTT-3.3.1-11] in
  3.1.1). The caller passes the message as it is; it does not test the payload.
- A filter of a shared subscription (``$share/{group}/{filter}``) gets nothing:
  retained messages go to a new non-shared subscription only (MQTT 5.0 §3.3.1.3,
  §4.8.2).
- A filter that starts with a wildcard does not match topics that start with ``$``
  ([MQTT-4.7.2-1]); see :mod:`pigeon.core.topic_names`.
- Expiry: a message whose ``expires_at`` (the core's clock; set here from the
  message's TTL as routing does, when the publisher gave one) has passed is never
  returned; it is dropped (and forgotten by the store) when a match or lookup meets
  it, and all expired ones are dropped before a new topic is refused for the limit.
  The store keeps the expiry as wall-clock time, so the time left keeps running
  across a restart ([MQTT-3.3.2-5]); the session sends ``expires_at - now`` as the
  remaining Message Expiry Interval ([MQTT-3.3.2-6]).
- Limit: at most ``limit`` topics per vhost (None: no limit). Replacing or clearing a
  topic's message is always accepted; a *new* topic when the vhost holds ``limit``
  (after dropping expired ones) is refused with :class:`~pigeon.errors.ResourceLimit`
  and nothing changes (the oldest are never evicted: a retained message is a
  device's last word, and losing one silently is worse than refusing the newest).

Every change is recorded in the store (``RetainMessage`` / ``ForgetRetained``), whether
the message was persistent or not: MQTT retains regardless of QoS, and RabbitMQ's
MQTT plugin and Mosquitto keep all retained messages across a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pigeon.core.message import Message
from pigeon.core.ports import Scheduler, Store
from pigeon.core.topic_names import SEPARATOR, TopicNames, has_wildcard
from pigeon.errors import ResourceLimit

SHARED_PREFIX = "$share" + SEPARATOR
# Topics a vhost may hold unless configured otherwise (Node.retained_limit).
DEFAULT_LIMIT = 1_000_000


class RetainedMessages:
    """The retained messages of one vhost, by topic name."""

    def __init__(
        self,
        vhost: str,
        scheduler: Scheduler,
        store: Store | None = None,
        *,
        limit: int | None = DEFAULT_LIMIT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.vhost = vhost
        self.limit = limit
        self._scheduler = scheduler
        self._store = store
        self._wall_clock = wall_clock
        self._messages: dict[str, Message] = {}
        self._names = TopicNames()

    def __len__(self) -> int:
        """Topics holding a retained message (expired ones not dropped yet included)."""
        return len(self._messages)

    # -- changes -------------------------------------------------------------------------

    def retain(self, topic: str, message: Message) -> bool:
        """Keep ``message`` as the topic's retained message; an empty body clears it.

        True when a message is now retained, False when the topic was cleared.
        Raises ResourceLimit for a new topic over the limit (nothing changes then).
        """
        if not message.body:
            self.forget(topic)
            return False
        now = self._scheduler.time()
        if topic not in self._messages:
            self._make_room(now)
        ttl = message.properties.ttl
        if ttl is not None and message.expires_at is None:
            message.expires_at = now + ttl / 1000  # as routing sets it
        self._put(topic, message)
        if self._store is not None:
            self._store.retain_message(self.vhost, topic, message, self._wall(message, now))
        return True

    def forget(self, topic: str) -> bool:
        """Drop the topic's retained message; False if it had none."""
        if not self._drop(topic):
            return False
        if self._store is not None:
            self._store.forget_retained(self.vhost, topic)
        return True

    def _make_room(self, now: float) -> None:
        limit = self.limit
        if limit is None or len(self._messages) < limit:
            return
        for topic in [t for t, m in self._messages.items() if _expired(m, now)]:
            self.forget(topic)
        if len(self._messages) >= limit:
            raise ResourceLimit(
                f"retained message limit of {limit} reached in vhost '{self.vhost}'"
            )

    def _put(self, topic: str, message: Message) -> None:
        if topic not in self._messages:
            self._names.add(topic)
        self._messages[topic] = message

    def _drop(self, topic: str) -> bool:
        if self._messages.pop(topic, None) is None:
            return False
        self._names.remove(topic)
        return True

    def _wall(self, message: Message, now: float) -> float | None:
        if message.expires_at is None:
            return None
        return self._wall_clock() + (message.expires_at - now)

    # -- replay (from the store or a log: nothing is written back) -------------------------

    def restore(self, topic: str, message: Message, expires: float | None) -> None:
        """A stored retained message; ``expires`` in wall-clock seconds (or None)."""
        if not message.body:
            self._drop(topic)
            return
        if expires is not None:
            message.expires_at = self._scheduler.time() + (expires - self._wall_clock())
        self._put(topic, message)

    def restore_forget(self, topic: str) -> bool:
        return self._drop(topic)

    # -- reads ---------------------------------------------------------------------------

    def get(self, topic: str) -> Message | None:
        """The topic's retained message, unless it expired (then it is dropped)."""
        message = self._messages.get(topic)
        if message is not None and _expired(message, self._scheduler.time()):
            self.forget(topic)
            return None
        return message

    def match(self, topic_filter: str) -> list[tuple[str, Message]]:
        """(topic, message) of every live retained message the filter matches.

        A filter without wildcards is one dict lookup; one with wildcards walks the
        trie of topic names along the filter. A shared subscription's filter gets none.
        """
        if topic_filter.startswith(SHARED_PREFIX):
            return []
        if not has_wildcard(topic_filter):
            message = self.get(topic_filter)
            return [] if message is None else [(topic_filter, message)]
        now = self._scheduler.time()
        found: list[tuple[str, Message]] = []
        expired: list[str] = []
        messages = self._messages
        for topic in self._names.match(topic_filter):
            message = messages[topic]
            if _expired(message, now):
                expired.append(topic)
            else:
                found.append((topic, message))
        for topic in expired:  # not while the trie is walked
            self.forget(topic)
        return found


def _expired(message: Message, now: float) -> bool:
    expires_at = message.expires_at
    return expires_at is not None and expires_at <= now
