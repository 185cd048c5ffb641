"""The AMQP handler's side of the handshake: login, token expiry, update-secret, open.

A mixin of :class:`~pigeon.protocols.amqp091.adapter.AMQPHandler`, apart so that
the adapter stays about frames in and answers out. Logins go through the
shared :class:`~pigeon.operations.services.Services` (authenticator, login gate,
connection limits, audit log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pigeon.auth.authenticator import LoginRefused
from pigeon.auth.authorization import Identity
from pigeon.auth.gate import LoginAttempt
from pigeon.auth.sasl import parse_plain
from pigeon.core.ports import Scheduler, TimerHandle
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotAllowed
from pigeon.operations.services import Services
from pigeon.protocols.amqp091 import connection as c
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.replies import ReplyCode
from pigeon.protocols.amqp091.tables import decode_table

if TYPE_CHECKING:
    from pigeon.protocols.amqp091.channel import Channel

log = logging.getLogger("pigeon.amqp")


class Login:
    """Login and connection.open for one connection (state lives on the handler)."""

    context: Services
    scheduler: Scheduler
    conn: c.ServerConnection
    peer: str
    loopback: bool
    tls: bool
    certificate: dict[str, Any] | None
    closed: bool
    username: str
    identity: Identity | None
    client_properties: dict[str, Any]
    want_flush: Callable[[], None]
    _attempt: LoginAttempt | None
    _expiry_timer: TimerHandle | None
    _counted: tuple[str, str] | None
    _vhost: VirtualHost | None
    channels: dict[int, Channel]

    @property
    def user(self) -> Identity:
        assert self.identity is not None, "channel methods only arrive after login"
        return self.identity

    def connection_lost(self) -> None:
        raise NotImplementedError

    def _login(self, event: c.LoginRequested) -> None:
        self.client_properties = event.client_properties
        credentials = self._credentials(event.mechanism, event.response)
        gate = self.context.logins
        if gate is not None:
            # A password hash costs tens of milliseconds: the gate runs it off the event
            # loop, in turn with everyone else's; a known password is answered at once.
            self._attempt = gate.login(
                event.mechanism,
                credentials,
                peer=self.peer,
                loopback=self.loopback,
                certificate=self.certificate,
                answer=self._logged_in,
            )
            return
        try:
            outcome: Identity | BaseException = self.context.authenticator.login(
                event.mechanism,
                credentials,
                peer=self.peer,
                loopback=self.loopback,
                certificate=self.certificate,
            )
        except LoginRefused as refused:
            outcome = refused
        self._logged_in(outcome)

    def _logged_in(self, outcome: Identity | BaseException) -> None:
        self._attempt = None
        if self.closed or self.conn.state is not c.ConnState.SECURING:
            return  # the client went away meanwhile
        if isinstance(outcome, LoginRefused):
            self.conn.refuse_login(outcome.text)  # logged and audited by the authenticator
        elif isinstance(outcome, BaseException):
            log.error("login check failed on %s", self.peer, exc_info=outcome)
            self.conn.close(ReplyCode.INTERNAL_ERROR, "INTERNAL_ERROR")
            self.connection_lost()
        else:
            self.identity = outcome
            self.username = outcome.name
            self.conn.accept_login()
            self._watch_expiry()
        self.want_flush()

    def _watch_expiry(self) -> None:
        """A token login lasts as long as its token (update-secret extends it)."""
        expires_at = self.user.expires_at
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            self._expiry_timer = self.scheduler.call_later(delay, self._check_expiry)

    def _check_expiry(self) -> None:
        self._expiry_timer = None
        expires_at = self.user.expires_at
        if self.closed or expires_at is None:
            return
        if expires_at > time.time():  # refreshed meanwhile
            self._watch_expiry()
            return
        log.info("token of %r on %s expired, closing the connection", self.username, self.peer)
        self.conn.close(ReplyCode.CONNECTION_FORCED, "CONNECTION_FORCED - credential expired")
        self.connection_lost()
        self.want_flush()

    def _update_secret(self, secret: bytes) -> None:
        """A new token for a token login; a password login keeps going, as in RabbitMQ."""
        identity = self.user
        if identity.expires_at is not None:
            try:
                self.identity = self.context.authenticator.refresh(
                    identity, secret.decode("utf-8", "replace")
                )
            except NotAllowed as error:
                self.conn.close(ReplyCode.NOT_ALLOWED, f"NOT_ALLOWED - {error.text}", 10, 70)
                self.connection_lost()
                return
            for channel in self.channels.values():  # the new token's scopes from now on
                channel.ops.relogin(self.identity)
        self.conn.send_method(0, m.ConnectionUpdateSecretOk())

    def _credentials(self, mechanism: str, response: bytes) -> tuple[str, str] | None:
        if mechanism == "PLAIN":
            return parse_plain(response)
        if mechanism == "AMQPLAIN":
            try:
                # The response is a field table without its length prefix.
                table = decode_table(len(response).to_bytes(4, "big") + response)
            except Exception:  # a malformed table is a refused login, not a crash
                return None
            login, password = table.get("LOGIN"), table.get("PASSWORD")
            if isinstance(login, str) and isinstance(password, str):
                return login, password
        return None

    def _open(self, name: str) -> None:
        context = self.context
        vhost = context.node.vhosts.get(name)
        try:
            if vhost is None:
                raise NotAllowed(f"vhost {name} not found")
            context.authenticator.check_vhost(self.user, name)
            context.limits.open(name, self.username)
        except NotAllowed as error:
            self.conn.close(ReplyCode.NOT_ALLOWED, f"NOT_ALLOWED - {error.text}", 10, 40)
            return
        self._counted = (name, self.username)
        if context.audit is not None:
            context.audit.connection_opened(self.peer, self.username, name, tls=self.tls)
        self._vhost = vhost
        self.conn.accept_open()
