"""Core objects as the JSON shapes of RabbitMQ's management API.

Field names and value types follow what RabbitMQ 3.10 returns, because
``rabbitmqadmin``, HTTP API client libraries and dashboards read them by name.
Fields that describe Erlang internals (reductions, garbage collection) are
left out; fields whose value Pigeon does not track yet are given RabbitMQ's
value for "nothing there" (0, ``null``, ``{}``) rather than invented.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from pigeon.admin.client_rates import CHANNEL_CHARTED, Tracked
from pigeon.admin.monitor import Monitor
from pigeon.admin.rates import (
    Counters,
    SampleHistory,
    Series,
    exchange_counters,
    message_stats,
    queue_counters,
)
from pigeon.admin.source import ChannelLike, HandlerLike
from pigeon.core.binding import Binding
from pigeon.core.consumer import Consumer
from pigeon.core.exchange import Exchange
from pigeon.core.paging import paged_out
from pigeon.core.policy import Policy
from pigeon.core.queue import Queue
from pigeon.core.vhost import VirtualHost
from pigeon.operations.policy_definitions import effective_definition
from pigeon.operations.sessions import SessionInfo

Json = dict[str, Any]
# Query parameters of RabbitMQ's API that ask for sample history in ``*_details``.
History = tuple[float, float] | None


def jsonable(value: Any) -> Any:
    """A field value (AMQP table types) as JSON can carry it."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


def rate_details(
    series: Series | None,
    key: str,
    monitor: Monitor,
    history: History,
    now: float,
    kept: SampleHistory | None = None,
) -> Json:
    """A counter's ``rate``; with ``history`` asked for, its ``samples`` too: every tick
    of the sliding window, then the longer retention of ``kept`` before it."""
    details: Json = {"rate": round(series.rate(key, monitor.window), 2) if series else 0.0}
    if history is not None and series is None:
        details["samples"] = []  # not sampled yet
    elif history is not None and series is not None:
        age, incr = history
        if kept is not None:
            details["samples"] = kept.samples(key, age, incr, now, series)
        else:
            details["samples"] = series.history(key, age, int(time.time() * 1000), now)
    return details


def properties_key(routing_key: str, arguments: Mapping[str, Any]) -> str:
    """RabbitMQ's binding id in URLs: the quoted key, plus ``~`` and a hash of arguments."""
    if not arguments:
        return quote(routing_key, safe="") if routing_key else "~"
    digest = hashlib.sha256(
        json.dumps(jsonable(arguments), sort_keys=True, default=str).encode()
    ).digest()
    return f"{quote(routing_key, safe='')}~{base64.urlsafe_b64encode(digest[:12]).decode()}"


def exchange_json(
    vhost: VirtualHost, exchange: Exchange, monitor: Monitor, history: History = None
) -> Json:
    series = monitor.sampler.exchange_series(exchange)
    keys = ("publish_in", "publish_out")
    stats = message_stats(exchange_counters(exchange), series, monitor.window, keys=keys)
    if history is not None and series is not None:
        kept, now = monitor.sampler.exchange_history(exchange), monitor.now()
        for key in keys:
            stats[f"{key}_details"] = rate_details(series, key, monitor, history, now, kept)
    return {
        "name": exchange.name,
        "vhost": vhost.name,
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": jsonable(exchange.arguments),
        "user_who_performed_action": "rmq-internal"
        if exchange.name.startswith("amq.") or exchange.name == ""
        else "",
        **policy_fields(exchange.policy, exchange.operator_policy),
        "message_stats": stats,
    }


def policy_fields(policy: Policy | None, operator: Policy | None) -> Json:
    """The policies that apply to a queue or exchange, and what they set together."""
    return {
        "policy": policy.name if policy is not None else None,
        "operator_policy": operator.name if operator is not None else None,
        "effective_policy_definition": effective_definition(policy, operator),
    }


def queue_json(
    vhost: VirtualHost,
    queue: Queue,
    monitor: Monitor,
    history: History = None,
    rates_history: History = None,
) -> Json:
    """A queue; ``history`` asks for depth samples (``lengths_*``), ``rates_history`` for
    message counter samples (``msg_rates_*``)."""
    counters = queue_counters(queue)
    series = monitor.sampler.queue_series(queue)
    kept = monitor.sampler.queue_history(queue)
    now = monitor.now()
    exclusive_tag = next((c.tag for c in queue.consumers if c.exclusive), None)
    result: Json = {
        "name": queue.name,
        "vhost": vhost.name,
        "node": monitor.node.name,
        "type": queue.type,
        "state": "running",
        "durable": queue.durable,
        "auto_delete": queue.auto_delete,
        "exclusive": queue.exclusive,
        "exclusive_consumer_tag": exclusive_tag,
        "arguments": jsonable(queue.arguments),
        **policy_fields(queue.policy, queue.operator_policy),
        "consumers": len(queue.consumers),
        "consumer_capacity": 1.0 if queue.consumers else 0,
        "consumer_utilisation": 1.0 if queue.consumers else 0,
        "single_active_consumer_tag": queue.active_consumer.tag if queue.active_consumer else None,
        "message_bytes": queue.ready.bytes,
        "message_bytes_ready": queue.ready.bytes,
        "message_bytes_unacknowledged": 0,
        "head_message_timestamp": None,
        "message_stats": message_stats(counters, series, monitor.window),
        "latency": monitor.latency.queue_summary(vhost.name, queue.name),
    }
    if queue.placement is not None:
        # Replicated elsewhere (cluster mode: a JetStream stream's servers).
        leader, members = queue.placement
        result.update(leader=leader, members=members, online=members)
        if queue.counts_deliveries:
            result.update(messages_dlx=queue.dead_letters_pending)
    elif queue.counts_deliveries:
        # A quorum queue's members: this node alone (replication factor 1).
        result.update(
            leader=monitor.node.name,
            members=[monitor.node.name],
            online=[monitor.node.name],
            messages_dlx=queue.dead_letters_pending,
        )
    for key in ("messages", "messages_ready", "messages_unacknowledged"):
        result[key] = int(counters[key])
        result[f"{key}_details"] = rate_details(series, key, monitor, history, now, kept)
        result[f"{key}_ram"] = int(counters[key])
    # RabbitMQ's names for what a paging queue keeps on disk only (docs/durability.md).
    paged, paged_bytes = paged_out(queue.ready)
    result["messages_paged_out"] = paged
    result["message_bytes_paged_out"] = paged_bytes
    result["messages_ram"] = result["messages"] - paged
    result["messages_ready_ram"] = result["messages_ready"] - paged
    result["message_bytes_ram"] = queue.ready.bytes - paged_bytes
    if rates_history is not None:
        for key in ("publish", "deliver_get", "ack"):
            result["message_stats"].setdefault(f"{key}_details", {})["samples"] = rate_details(
                series, key, monitor, rates_history, now, kept
            ).get("samples", [])
    return result


def binding_json(vhost: str, binding: Binding) -> Json:
    arguments = jsonable(binding.argument_dict)
    return {
        "source": binding.source,
        "vhost": vhost,
        "destination": binding.destination,
        "destination_type": str(binding.destination_kind),
        "routing_key": binding.routing_key,
        "arguments": arguments,
        "properties_key": properties_key(binding.routing_key, arguments),
    }


def default_binding_json(vhost: str, queue: str) -> Json:
    """The default exchange's implicit binding to every queue (listed by RabbitMQ too)."""
    return {
        "source": "",
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": queue,
        "arguments": {},
        "properties_key": properties_key(queue, {}),
    }


def vhost_bindings(vhost: VirtualHost) -> list[Json]:
    rows = [default_binding_json(vhost.name, name) for name in vhost.queues]
    rows.extend(binding_json(vhost.name, b) for b in vhost.bindings())
    return rows


def connection_name(handler: HandlerLike, monitor: Monitor) -> str:
    """RabbitMQ's "peer -> local": the listener the client came in on (MQTT, TLS, WS)."""
    local = handler.describe().local
    if not local:
        local = f"{monitor.broker.config.host}:{monitor.broker.amqp_port}"
    return f"{handler.peer} -> {local}"


def is_mqtt(info: SessionInfo) -> bool:
    """An MQTT session, over TCP, TLS or WebSocket ("Web MQTT 5.0")."""
    return "MQTT" in info.protocol


def _split_peer(peer: str) -> tuple[str, int]:
    host, _, port = peer.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def connection_json(handler: HandlerLike, monitor: Monitor, history: History = None) -> Json:
    """RabbitMQ's connection row, from the session's neutral description and extras; and
    Pigeon's ``message_stats``: its channels' counters summed (as RabbitMQ's channels)."""
    info = handler.describe()
    peer_host, peer_port = _split_peer(info.peer)
    config = monitor.broker.config
    connected = monitor.connected_at.get(handler, monitor.started_at)
    return {
        "name": connection_name(handler, monitor),
        "node": monitor.node.name,
        "type": "network",
        "protocol": info.protocol,
        "state": "running",
        "user": info.user,
        "user_who_performed_action": info.user,
        "vhost": info.vhost,
        "channels": info.channels,
        "peer_host": peer_host,
        "peer_port": peer_port,
        "host": config.host,
        "port": _split_peer(info.local)[1] if info.local else monitor.broker.amqp_port,
        "ssl": info.tls,
        "auth_mechanism": info.mechanism or "PLAIN",
        **jsonable(dict(info.extras)),
        "connected_at": int(connected * 1000),
        "client_properties": jsonable(info.client_properties),
        "message_stats": client_stats(
            monitor.clients.connection_counters(handler),
            monitor.clients.connection(handler),
            monitor,
            history,
        ),
    }


def channel_json(
    handler: HandlerLike, channel: ChannelLike, monitor: Monitor, history: History = None
) -> Json:
    name = connection_name(handler, monitor)
    peer_host, peer_port = _split_peer(handler.peer)
    return {
        "name": f"{name} ({channel.number})",
        "number": channel.number,
        "node": monitor.node.name,
        "user": handler.username,
        "vhost": handler.describe().vhost,
        "state": "running",
        "connection_details": {"name": name, "peer_host": peer_host, "peer_port": peer_port},
        "consumer_count": len(channel.consumers),
        "messages_unacknowledged": len(channel.unacked),
        "messages_unconfirmed": 0,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        **channel.extras(),
        "message_stats": client_stats(
            {key: float(n) for key, n in channel.stats.items()},
            monitor.clients.channel(channel),
            monitor,
            history,
        ),
    }


def client_stats(
    counters: Counters, tracked: Tracked | None, monitor: Monitor, history: History
) -> Json:
    """A channel's or connection's ``message_stats``; with ``msg_rates_age`` asked for,
    each ``*_details`` carries its ``samples`` as a queue's do."""
    series = tracked.series if tracked is not None else None
    stats = message_stats(counters, series, monitor.window, keys=CHANNEL_CHARTED)
    if history is not None:
        kept, now = (tracked.history if tracked is not None else None), monitor.now()
        for key in CHANNEL_CHARTED:
            if key in stats:
                stats[f"{key}_details"] = rate_details(series, key, monitor, history, now, kept)
    return stats


def consumer_json(
    vhost: str,
    queue: Queue,
    consumer: Consumer,
    channel: tuple[HandlerLike, ChannelLike] | None,
    monitor: Monitor,
) -> Json:
    details: Json = {}
    prefetch: object = 0
    if channel is not None:
        handler, chan = channel
        peer_host, peer_port = _split_peer(handler.peer)
        name = connection_name(handler, monitor)
        details = {
            "name": f"{name} ({chan.number})",
            "number": chan.number,
            "connection_name": name,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "node": monitor.node.name,
            "user": handler.username,
        }
        prefetch = chan.extras().get("prefetch_count", 0)
    active = queue.active_consumer
    is_active = active is None or active is consumer
    return {
        "consumer_tag": consumer.tag,
        "queue": {"name": queue.name, "vhost": vhost},
        "channel_details": details,
        "ack_required": not consumer.no_ack,
        "exclusive": consumer.exclusive,
        "prefetch_count": prefetch,
        "arguments": jsonable(consumer.arguments),
        "active": is_active,
        "activity_status": "up" if is_active else "waiting",
        "priority": consumer.priority,
    }
