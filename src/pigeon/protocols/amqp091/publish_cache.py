"""Decoded basic.publish arguments and content properties, by their wire bytes.

Publishers repeat the same exchange, routing key and properties, and a hit
costs a dict lookup where a decode builds strings and objects. Both caches are
emptied when full, so unique values (a message id per message) cost little and
hold little. The objects are shared between messages, which is safe: methods
and Properties are never changed in place (copy() makes new ones), as a message
fanned out to many queues already relies on.

The hot path looks ``PUBLISHES`` and ``PROPERTIES`` up itself and calls the
decoders only on a miss.
"""

from __future__ import annotations

from struct import error as StructError

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import Properties, decode_encoded_properties
from pigeon.protocols.amqp091.replies import HardError

CACHE_ENTRIES = 512
CACHE_MAX_KEY = 512  # bytes; larger property lists are decoded every time
PUBLISHES: dict[bytes, m.BasicPublish] = {}
PROPERTIES: dict[bytes, tuple[Properties, bytes]] = {}


def decode_publish(args: bytes) -> m.BasicPublish | None:
    """Decode (and cache) publish arguments; None if they do not parse."""
    try:
        method = m.BasicPublish.decode(args)
    except (StructError, ValueError, IndexError):
        return None
    if len(args) <= CACHE_MAX_KEY:
        if len(PUBLISHES) >= CACHE_ENTRIES:
            PUBLISHES.clear()
        PUBLISHES[args] = method
    return method


def decode_props(props: bytes) -> tuple[Properties, bytes] | None:
    """Decode (and cache) properties, kept with their wire form."""
    try:
        known = decode_encoded_properties(props), props
    except HardError:
        return None
    if len(props) <= CACHE_MAX_KEY:
        if len(PROPERTIES) >= CACHE_ENTRIES:
            PROPERTIES.clear()
        PROPERTIES[props] = known
    return known
