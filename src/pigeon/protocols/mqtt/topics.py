"""Topic names and topic filters (MQTT 5.0 §4.7, §4.8.2; 3.1.1 §4.7).

The codec only checks that topics are valid UTF-8 and that a PUBLISH topic has
no wildcard; the rules here (wildcard placement, limits, shared subscriptions)
are applied by the session, which can refuse one filter of a SUBSCRIBE in its
SUBACK instead of closing the connection. Errors raise :class:`ProtocolViolation`
with Topic Name invalid (0x90) or Topic Filter invalid (0x8F).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode

SEPARATOR: Final = "/"
SINGLE_LEVEL: Final = "+"
MULTI_LEVEL: Final = "#"
SHARE_PREFIX: Final = "$share/"


@dataclass(frozen=True, slots=True)
class TopicLimits:
    """Server limits on topics; the standard's own ceiling is 65,535 bytes (§1.5.4)."""

    max_length: int = 65_535  # bytes of UTF-8
    max_levels: int = 128


DEFAULT_LIMITS: Final = TopicLimits()


@dataclass(frozen=True, slots=True)
class SharedSubscription:
    """``$share/{group}/{filter}`` split into its parts (§4.8.2)."""

    group: str
    filter: str


def _invalid_name(text: str) -> ProtocolViolation:
    return ProtocolViolation(ReasonCode.TOPIC_NAME_INVALID, text)


def _invalid_filter(text: str) -> ProtocolViolation:
    return ProtocolViolation(ReasonCode.TOPIC_FILTER_INVALID, text)


def _check_limits(topic: str, limits: TopicLimits) -> str:
    if len(topic.encode("utf-8")) > limits.max_length:
        return f"longer than {limits.max_length} bytes"
    if topic.count(SEPARATOR) >= limits.max_levels:
        return f"more than {limits.max_levels} levels"
    return ""


def check_topic_name(name: str, limits: TopicLimits = DEFAULT_LIMITS) -> None:
    """A topic name to publish to: non-empty [MQTT-4.7.3-1], no wildcard [MQTT-4.7.0-1]."""
    if not name:
        raise _invalid_name("topic name is empty")
    if SINGLE_LEVEL in name or MULTI_LEVEL in name:
        raise _invalid_name(f"topic name {name!r} contains a wildcard")
    problem = _check_limits(name, limits)
    if problem:
        raise _invalid_name(f"topic name is {problem}")


def _check_filter_levels(topic_filter: str) -> None:
    levels = topic_filter.split(SEPARATOR)
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if MULTI_LEVEL in level and (level != MULTI_LEVEL or index != last):
            # [MQTT-4.7.1-1] '#' stands alone as the last level.
            raise _invalid_filter(f"'#' must be a whole level at the end of {topic_filter!r}")
        if SINGLE_LEVEL in level and level != SINGLE_LEVEL:
            # [MQTT-4.7.1-2] '+' occupies a whole level.
            raise _invalid_filter(f"'+' must be a whole level in {topic_filter!r}")


def check_topic_filter(topic_filter: str, limits: TopicLimits = DEFAULT_LIMITS) -> None:
    """A topic filter to subscribe with (not a ``$share`` one; see :func:`parse_filter`)."""
    if not topic_filter:
        raise _invalid_filter("topic filter is empty")  # [MQTT-4.7.3-1]
    _check_filter_levels(topic_filter)
    problem = _check_limits(topic_filter, limits)
    if problem:
        raise _invalid_filter(f"topic filter is {problem}")


def parse_shared(topic_filter: str) -> SharedSubscription | None:
    """Split ``$share/{group}/{filter}``; ``None`` for an ordinary filter.

    The group is at least one character [MQTT-4.8.2-1] without '/', '+' or '#',
    and is followed by '/' and a topic filter [MQTT-4.8.2-2].
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, slash, rest = topic_filter[len(SHARE_PREFIX) :].partition(SEPARATOR)
    if not group:
        raise _invalid_filter(f"shared subscription {topic_filter!r} has an empty share name")
    if SINGLE_LEVEL in group or MULTI_LEVEL in group:
        raise _invalid_filter(f"share name {group!r} contains a wildcard")
    if not slash or not rest:
        raise _invalid_filter(f"shared subscription {topic_filter!r} has no topic filter")
    return SharedSubscription(group, rest)


def parse_filter(
    topic_filter: str, limits: TopicLimits = DEFAULT_LIMITS, *, shared_allowed: bool = True
) -> tuple[str, SharedSubscription | None]:
    """Check a SUBSCRIBE/UNSUBSCRIBE filter; return the filter to match and its share, if any.

    With ``shared_allowed=False`` (3.1.1, where ``$share`` means nothing) the
    filter is taken as written.
    """
    shared = parse_shared(topic_filter) if shared_allowed else None
    matched = shared.filter if shared is not None else topic_filter
    check_topic_filter(matched, limits)
    if shared is not None:
        problem = _check_limits(topic_filter, limits)
        if problem:
            raise _invalid_filter(f"topic filter is {problem}")
    return matched, shared


def matches_dollar_topics(topic_filter: str) -> bool:
    """Whether a filter may match topic names starting with '$' [MQTT-4.7.2-1].

    A filter whose first character is a wildcard never does: ``#`` and ``+/x``
    do not match ``$SYS/x``; ``$SYS/#`` does.
    """
    return not topic_filter.startswith((SINGLE_LEVEL, MULTI_LEVEL))


def filter_matches(topic_filter: str, name: str) -> bool:
    """Whether a valid (non-shared) filter matches a topic name (§4.7), '$' rule included.

    A plain reference implementation for tests and small tables; routing uses the core's index.
    """
    if name.startswith("$") and not matches_dollar_topics(topic_filter):
        return False
    want = topic_filter.split(SEPARATOR)
    have = name.split(SEPARATOR)
    for index, level in enumerate(want):
        if level == MULTI_LEVEL:
            return True  # '#' also matches the parent level [MQTT-4.7.1.2]
        if index >= len(have) or (level != SINGLE_LEVEL and level != have[index]):
            return False
    return len(want) == len(have)
