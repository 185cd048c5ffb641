"""What every client connection and entry point shares, whatever its protocol.

The core (the node and its vhosts), the accounts and how logins are checked,
resource alarms, connection limits, the audit log and the reply-to registry.
Protocol settings (AMQP's frame and channel limits, heartbeats) stay in their
protocol package; the composition root (:mod:`pigeon.broker`) makes one
:class:`Services` and hands it to every listener and API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pigeon.auth.audit import AuditLog
from pigeon.auth.authenticator import Authenticator
from pigeon.auth.gate import LoginGate
from pigeon.auth.users import UserStore
from pigeon.core.alarms import Alarms
from pigeon.core.node import Node
from pigeon.operations.limits import ConnectionLimits
from pigeon.operations.replies import ReplyRegistry


@dataclass
class Services:
    """The broker's shared services: the core, users, alarms, limits, audit, replies."""

    node: Node
    users: UserStore
    replies: ReplyRegistry = field(default_factory=ReplyRegistry)
    default_vhost: str = "/"
    alarms: Alarms = field(default_factory=Alarms)
    auth: Authenticator | None = None
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    audit: AuditLog | None = None
    # Password checks off the event loop (auth/gate.py); None checks inline (sans-IO use).
    logins: LoginGate | None = None

    def __post_init__(self) -> None:
        if self.auth is None:
            self.auth = Authenticator(self.users, audit=self.audit)

    @property
    def authenticator(self) -> Authenticator:
        assert self.auth is not None
        return self.auth
