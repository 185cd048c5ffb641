"""Who is connecting: password, token or certificate in, an :class:`Identity` out.

One :class:`Authenticator` per broker, shared by the AMQP listeners and the
management API. It writes the audit lines for logins, enforces the
loopback-only rule (judged by the connection's peer address, never by what
the client says) and refuses anonymous logins: there is no mechanism
without a credential.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pigeon.auth import authorization
from pigeon.auth.audit import AuditLog
from pigeon.auth.authorization import Identity, StoreAuthority
from pigeon.auth.refusals import RefusalLog
from pigeon.auth.sasl import AMQPLAIN, COMMON_NAME, EXTERNAL, PLAIN, certificate_login_name
from pigeon.auth.tokens import InvalidToken, TokenAuthority, TokenVerifier, looks_like_jwt
from pigeon.auth.users import PasswordCheck, UserStore
from pigeon.errors import NotAllowed


class LoginRefused(Exception):
    """Answer connection.close 403 with ``text``; ``reason`` goes to the log only."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text)
        self.text = text
        self.reason = reason


ANONYMOUS = "ANONYMOUS"


def _refused_text(mechanism: str) -> str:
    # RabbitMQ's words: the client learns nothing about which part was wrong.
    return (
        f"ACCESS_REFUSED - Login was refused using authentication mechanism "
        f"{mechanism}. For details see the broker logfile."
    )


class Authenticator:
    def __init__(
        self,
        users: UserStore,
        *,
        audit: AuditLog | None = None,
        tokens: TokenVerifier | None = None,
        refusals: RefusalLog | None = None,
        cert_login_from: str = COMMON_NAME,
    ) -> None:
        self.users = users
        # Which part of a client certificate names its user (RabbitMQ's
        # ssl_cert_login_from): "common_name" or "distinguished_name".
        self.cert_login_from = cert_login_from
        self.audit = audit
        self.tokens = tokens
        self.refusals = refusals or RefusalLog(audit)

    def mechanisms(self, *, external: bool = False) -> tuple[str, ...]:
        """What connection.start offers; EXTERNAL only on a TLS connection whose
        client presented a verified certificate."""
        return (PLAIN, AMQPLAIN, EXTERNAL) if external else (PLAIN, AMQPLAIN)

    def login(
        self,
        mechanism: str,
        credentials: tuple[str, str] | None,
        *,
        peer: str,
        loopback: bool,
        certificate: Mapping[str, Any] | None = None,
    ) -> Identity:
        """connection.start-ok, all in one on the calling thread: ``credentials`` as
        decoded from PLAIN or AMQPLAIN, ``certificate`` the verified peer certificate
        (``getpeercert()``) if any."""
        outcome = self.begin(
            mechanism, credentials, peer=peer, loopback=loopback, certificate=certificate
        )
        if isinstance(outcome, PasswordCheck):
            return self.finish(
                outcome, outcome.run(), mechanism=mechanism, peer=peer, loopback=loopback
            )
        return outcome

    def begin(
        self,
        mechanism: str,
        credentials: tuple[str, str] | None,
        *,
        peer: str,
        loopback: bool,
        certificate: Mapping[str, Any] | None = None,
    ) -> Identity | PasswordCheck:
        """What takes microseconds, for the event loop: the identity of a certificate,
        a token or a password verified before, or :class:`LoginRefused`; else the
        password check (scrypt) still to run, whose outcome goes to :meth:`finish`."""
        if mechanism == EXTERNAL:
            return self.login_external(certificate, peer=peer, loopback=loopback)
        if mechanism not in (PLAIN, AMQPLAIN) or credentials is None:
            raise self._fail("", peer, mechanism, "unsupported mechanism or malformed response")
        name, password = credentials
        if self.tokens is not None and looks_like_jwt(password):
            return self._login_token(password, peer=peer, mechanism=mechanism)
        if self.users.cached(name, password) is not None:
            return self._admit(name, peer, loopback, mechanism)
        check = self.users.password_check(name, password)
        if check is None:
            raise self._fail(name, peer, mechanism, "invalid credentials")
        return check

    def finish(
        self, check: PasswordCheck, ok: bool, *, mechanism: str, peer: str, loopback: bool
    ) -> Identity:
        """The outcome of a password check from :meth:`begin`, back on the event loop."""
        if self.users.checked(check, ok) is None:
            raise self._fail(check.name, peer, mechanism, "invalid credentials")
        return self._admit(check.name, peer, loopback, mechanism)

    def login_external(
        self, certificate: Mapping[str, Any] | None, *, peer: str, loopback: bool
    ) -> Identity:
        """A user named by the verified client certificate (AMQP's EXTERNAL, MQTT's
        certificate logins): its password is not used."""
        name = certificate_login_name(certificate, self.cert_login_from)
        if name is None:
            raise self._fail("", peer, EXTERNAL, "no verified client certificate with a name")
        if name not in self.users.users:
            raise self._fail(name, peer, EXTERNAL, "no user named as the certificate's subject")
        return self._admit(name, peer, loopback, EXTERNAL)

    def login_anonymous(self, name: str, *, peer: str, loopback: bool) -> Identity:
        """A client without credentials, taken as user ``name`` (MQTT's anonymous clients
        log in as RabbitMQ's default user); that user's rules (loopback only) apply."""
        if name not in self.users.users:
            raise self._fail(name, peer, ANONYMOUS, "no such user for anonymous clients")
        return self._admit(name, peer, loopback, ANONYMOUS)

    def _admit(self, name: str, peer: str, loopback: bool, mechanism: str) -> Identity:
        user = self.users.users[name]
        if user.loopback_only and not loopback:
            raise self._fail(
                name,
                peer,
                mechanism,
                "loopback-only user from a remote peer",
                text=f"ACCESS_REFUSED - User '{name}' can only connect via localhost",
            )
        self._succeeded(name, peer, mechanism)
        return Identity(
            name, StoreAuthority(self.users, name), user.tags, peer, mechanism, self.audit
        )

    def _login_token(self, token: str, *, peer: str, mechanism: str) -> Identity:
        assert self.tokens is not None
        try:
            verified = self.tokens.verify(token)
        except InvalidToken as error:
            raise self._fail("", peer, mechanism, error.reason) from None
        self._succeeded(verified.username, peer, mechanism + "+token")
        return Identity(
            verified.username,
            TokenAuthority(verified.scopes),
            verified.tags,
            peer,
            mechanism,
            self.audit,
            expires_at=verified.expires_at,
        )

    def refresh(self, user: Identity, secret: str) -> Identity:
        """connection.update-secret: a new token for the same user, or NotAllowed (530)."""
        if self.tokens is None or user.expires_at is None:
            raise NotAllowed(
                f"Secret update was refused for user '{user.name}': "
                f"the connection did not log in with a token"
            )
        try:
            verified = self.tokens.verify(secret)
        except InvalidToken as error:
            self._audit_failed(user.name, user.peer, "update-secret", error.reason)
            raise NotAllowed(f"Secret update was refused for user '{user.name}'") from None
        if verified.username != user.name:
            self._audit_failed(user.name, user.peer, "update-secret", "another user's token")
            raise NotAllowed(
                f"Secret update was refused for user '{user.name}': "
                f"the new token is for another user"
            )
        self._succeeded(user.name, user.peer, "update-secret")
        return Identity(
            user.name,
            TokenAuthority(verified.scopes),
            verified.tags,
            user.peer,
            user.mechanism,
            self.audit,
            expires_at=verified.expires_at,
        )

    def check_vhost(self, user: Identity, vhost: str) -> None:
        authorization.check_vhost(user, vhost)

    # -- audit -----------------------------------------------------------------------

    def _succeeded(self, name: str, peer: str, mechanism: str) -> None:
        if self.audit is not None:
            self.audit.login_succeeded(name, peer, mechanism)

    def _audit_failed(self, name: str, peer: str, mechanism: str, reason: str) -> None:
        self.refusals.refused(name, peer, mechanism, reason)

    def refuse(self, name: str, peer: str, mechanism: str, reason: str) -> LoginRefused:
        """A login refused before its credential was looked at (throttled), audited."""
        return self._fail(name, peer, mechanism, reason)

    def _fail(
        self, name: str, peer: str, mechanism: str, reason: str, *, text: str | None = None
    ) -> LoginRefused:
        self._audit_failed(name, peer, mechanism, reason)
        return LoginRefused(text or _refused_text(mechanism or "(none)"), reason)


def exposure_warning(host: str, users: UserStore) -> str | None:
    """What to log at start when the broker listens beyond loopback with only ``guest``.

    guest cannot log in from another machine, so such a broker answers no remote
    client at all: say so rather than let the operator guess.
    """
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"  # "" and "0.0.0.0"-like names mean every interface
    if local or any(name != "guest" for name in users.users):
        return None
    return (
        f"listening on {host}, which is not a loopback address, but the only user is "
        f"'guest', who may connect from localhost only: add a user for remote clients"
    )
