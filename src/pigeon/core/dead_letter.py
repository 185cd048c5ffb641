"""Dead letters: the copy of a message that leaves a queue for its dead-letter exchange.

RabbitMQ's rules: an ``x-death`` entry per (queue, reason), newest first, with a count;
``x-first-death-*`` headers set once; the per-message expiration removed (kept as
``original-expiration``) so that the dead letter does not expire again; a dead letter
that would return to a queue it died in, with no rejection on the way, is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pigeon.core.message import Headers, Long, Message, set_header


def dead_letter_message(
    message: Message, queue: str, reason: str, exchange: str, routing_key: str | None
) -> tuple[Message, list[dict[str, Any]]]:
    """The dead letter of ``message`` for ``exchange`` (routing key: ``routing_key``, or
    the message's), and its ``x-death`` entries, newest first."""
    props = message.properties
    table = props.header_table()
    routing_keys = [message.routing_key]
    for name in ("CC", "BCC"):
        extra = table.get(name)
        if isinstance(extra, list):
            routing_keys.extend(k for k in extra if isinstance(k, str))
    headers, deaths = _record_death(
        props.headers, table, queue, reason, message.exchange, routing_keys, props.ttl
    )
    dead = Message(
        exchange=exchange,
        routing_key=routing_key or message.routing_key,
        # No TTL any more: the dead letter does not expire again (expires_at unset).
        properties=props.copy(headers=headers, ttl=None),
        body=message.body,
        published_at=message.published_at,
    )
    return dead, deaths


def _now() -> datetime:
    """Wall-clock time to the second, which protocols carry as a timestamp."""
    return datetime.now(UTC).replace(microsecond=0)


def _record_death(
    headers: Headers,
    table: dict[str, Any],
    queue: str,
    reason: str,
    exchange: str,
    routing_keys: list[str],
    ttl: int | None,
) -> tuple[Headers, list[dict[str, Any]]]:
    """Update ``x-death`` the way RabbitMQ does: one entry per (queue, reason), newest
    first, its count a 64-bit integer and its time a timestamp, as RabbitMQ types them."""
    deaths = [dict(d) for d in table.get("x-death") or [] if isinstance(d, dict)]
    for index, death in enumerate(deaths):
        if death.get("queue") == queue and death.get("reason") == reason:
            death["count"] = Long(int(death.get("count", 0)) + 1)
            death["time"] = _now()
            deaths.insert(0, deaths.pop(index))
            break
    else:
        death = {
            "count": Long(1),
            "reason": reason,
            "queue": queue,
            "time": _now(),
            "exchange": exchange,
            "routing-keys": routing_keys,
        }
        if ttl is not None:
            death["original-expiration"] = str(ttl)
        deaths.insert(0, death)
        for name, value in (
            ("x-first-death-reason", reason),
            ("x-first-death-queue", queue),
            ("x-first-death-exchange", exchange),
        ):
            if name not in table:
                headers = (*headers, (name, value))
    return set_header(headers, "x-death", deaths), deaths


def is_cycle(deaths: list[dict[str, Any]], target: str) -> bool:
    """A dead letter returning to a queue it died in, with no rejection on the way."""
    if not any(d.get("queue") == target for d in deaths[1:]) and deaths[0].get("queue") != target:
        return False
    return not any(d.get("reason") == "rejected" for d in deaths)
