"""Which permissions each AMQP 0-9-1 operation needs: RabbitMQ's access-control table.

One function per operation, each a few calls to :func:`authorize`. Only the
operations layer (:class:`pigeon.operations.client.Client`) calls them, for
every entry point (AMQP, the management API, the embedded API), so the paths
cannot drift apart. The dead-letter row is RabbitMQ 3.10's ``rabbit_channel``:
for a new queue only, read on the queue and write on its dead-letter exchange.

| operation | configure | write | read |
| --- | --- | --- | --- |
| exchange.declare | exchange | AE (new exchange with ``alternate-exchange``) | exchange (with AE) |
| exchange.declare passive | any of the three on the exchange |||
| exchange.delete | exchange | | |
| queue.declare | queue | DLX (new queue with ``x-dead-letter-exchange``) | queue (with DLX) |
| queue.declare passive | any of the three on the queue |||
| queue.delete | queue | | |
| queue.purge | | | queue |
| queue.bind / unbind | | queue | exchange (+ topic read of the key) |
| exchange.bind / unbind | | destination | source (+ topic read of the key) |
| basic.publish | | exchange (+ topic write of the key) | |
| basic.consume / basic.get | | | queue |
| move messages (management API, Pigeon's own) | | destination queue | source queue |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pigeon.auth.authorization import Identity, Permission, Resource, authorize, authorize_any

ALTERNATE_EXCHANGE = "alternate-exchange"
DEAD_LETTER_EXCHANGE = "x-dead-letter-exchange"
TOPIC = "topic"
# A server-named queue is checked under a name of the same shape as the one
# the core will generate (amq.gen- and 22 URL-safe base64 characters).
GENERATED_QUEUE_PLACEHOLDER = "amq.gen-" + "A" * 22

CONFIGURE, WRITE, READ = Permission.CONFIGURE, Permission.WRITE, Permission.READ
QUEUE, EXCHANGE = Resource.QUEUE, Resource.EXCHANGE


def _argument(arguments: Mapping[str, Any] | None, key: str) -> str | None:
    value = (arguments or {}).get(key)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def exchange_declare(
    user: Identity,
    vhost: str,
    name: str,
    *,
    passive: bool = False,
    arguments: Mapping[str, Any] | None = None,
    new: bool = True,
) -> None:
    """``new``: the exchange does not exist yet (only then is an AE checked, as in RabbitMQ)."""
    if passive:
        authorize_any(user, vhost, EXCHANGE, name)
        return
    authorize(user, vhost, CONFIGURE, EXCHANGE, name)
    alternate = _argument(arguments, ALTERNATE_EXCHANGE)
    if new and alternate is not None:
        authorize(user, vhost, READ, EXCHANGE, name)
        authorize(user, vhost, WRITE, EXCHANGE, alternate)


def exchange_delete(user: Identity, vhost: str, name: str) -> None:
    authorize(user, vhost, CONFIGURE, EXCHANGE, name)


def queue_declare(
    user: Identity,
    vhost: str,
    name: str,
    *,
    passive: bool = False,
    arguments: Mapping[str, Any] | None = None,
    new: bool = True,
) -> None:
    """``name`` empty: a server-named queue, checked as ``amq.gen-...``."""
    name = name or GENERATED_QUEUE_PLACEHOLDER
    if passive:
        authorize_any(user, vhost, QUEUE, name)
        return
    authorize(user, vhost, CONFIGURE, QUEUE, name)
    dead_letter = _argument(arguments, DEAD_LETTER_EXCHANGE)
    if new and dead_letter is not None:
        authorize(user, vhost, READ, QUEUE, name)
        authorize(user, vhost, WRITE, EXCHANGE, dead_letter)


def queue_delete(user: Identity, vhost: str, name: str) -> None:
    authorize(user, vhost, CONFIGURE, QUEUE, name)


def queue_purge(user: Identity, vhost: str, name: str) -> None:
    authorize(user, vhost, READ, QUEUE, name)


def _topic_key(exchange_type: str | None, routing_key: str) -> str | None:
    return routing_key if exchange_type == TOPIC else None


def queue_bind(
    user: Identity,
    vhost: str,
    queue: str,
    exchange: str,
    routing_key: str = "",
    exchange_type: str | None = None,
) -> None:
    """queue.bind and queue.unbind; pass the exchange's type for topic permissions."""
    authorize(user, vhost, WRITE, QUEUE, queue)
    authorize(user, vhost, READ, EXCHANGE, exchange, _topic_key(exchange_type, routing_key))


def exchange_bind(
    user: Identity,
    vhost: str,
    destination: str,
    source: str,
    routing_key: str = "",
    source_type: str | None = None,
) -> None:
    """exchange.bind and exchange.unbind; pass the source's type for topic permissions."""
    authorize(user, vhost, WRITE, EXCHANGE, destination)
    authorize(user, vhost, READ, EXCHANGE, source, _topic_key(source_type, routing_key))


def publish(
    user: Identity,
    vhost: str,
    exchange: str,
    routing_key: str = "",
    exchange_type: str | None = None,
) -> None:
    authorize(user, vhost, WRITE, EXCHANGE, exchange, _topic_key(exchange_type, routing_key))


def consume(user: Identity, vhost: str, queue: str) -> None:
    """basic.consume and basic.get."""
    authorize(user, vhost, READ, QUEUE, queue)


get = consume


def move(user: Identity, vhost: str, source: str, destination: str) -> None:
    """Moving ready messages between queues (``POST /api/queues/.../move``)."""
    authorize(user, vhost, READ, QUEUE, source)
    authorize(user, vhost, WRITE, QUEUE, destination)
