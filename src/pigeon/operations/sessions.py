"""How a client connection describes itself, whatever protocol it speaks.

The management API lists connections from this description: the fields every
protocol has (peer, user, vhost, channels or sessions, client properties, login
mechanism, TLS), plus ``extras``, the protocol's own fields (AMQP's frame and
channel limits and heartbeat), shown as they are. A protocol's session builds it
in its ``describe()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SessionInfo:
    protocol: str  # as the management API names it: "AMQP 0-9-1", "MQTT 3.1.1"...
    peer: str  # host:port of the client
    user: str
    vhost: str | None  # None until the client chose one
    channels: int  # AMQP channels; sessions of other protocols count as one
    client_properties: Mapping[str, Any] = field(default_factory=dict)
    mechanism: str = ""  # how the user logged in (PLAIN, EXTERNAL...)
    tls: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)
    local: str = ""  # host:port the client connected to (which listener), if known
    # This connection's message counts under the metrics' keys ("received", "confirmed",
    # "deliver_get", ...), for a protocol counted apart from the node's totals (MQTT).
    counters: Mapping[str, int] = field(default_factory=dict)
