"""Who may use the management API, and what each user may see and do.

Authentication is HTTP basic with the broker's own users. What a user may do
follows RabbitMQ's management tags:

- ``management``: the API, for the vhosts the user has permissions in, and
  only the user's own connections and channels;
- ``policymaker``: as management, plus policies and runtime parameters in
  the vhosts the user has permissions in, and global parameters;
- ``monitoring``: as management, plus every vhost, connection and channel
  (read only) and node-level data;
- ``administrator``: everything, including users, vhosts, permissions and
  definitions.

Acting on resources (declare, delete, bind, publish, get, purge) goes through
the operations layer (:class:`pigeon.operations.client.Client`) as this user,
with the very checks an AMQP client gets, so the API is no back door around
the vhost permissions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from pigeon.auth.authorization import Identity, StoreAuthority
from pigeon.auth.gate import LoginGate
from pigeon.auth.users import User, UserStore

MANAGEMENT_TAGS = frozenset({"management", "policymaker", "monitoring", "administrator"})


class Forbidden(Exception):
    """The request is authenticated but not allowed; answered with 401 as RabbitMQ does."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The user name and password of an ``Authorization: Basic`` header, if well formed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


class Principal:
    """An authenticated management user and the checks every handler asks of it."""

    def __init__(self, user: User, users: UserStore) -> None:
        self.user = user
        self.users = users
        self.identity = Identity(
            user.name, StoreAuthority(users, user.name), user.tags, mechanism="HTTP"
        )

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def tags(self) -> frozenset[str]:
        return self.user.tags

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.user.tags

    @property
    def is_monitor(self) -> bool:
        return self.is_admin or "monitoring" in self.user.tags

    @property
    def is_policymaker(self) -> bool:
        return self.is_admin or "policymaker" in self.user.tags

    def require_policymaker(self) -> None:
        if not self.is_policymaker:
            raise Forbidden("User not authorised to access object")

    def may_use_vhost(self, vhost: str) -> bool:
        """Has permissions there (RabbitMQ's "login vhosts"; monitoring alone is not enough
        for policies and parameters), or is an administrator."""
        return self.is_admin or self.users.may_access(self.user, vhost)

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Not administrator user")

    def require_monitor(self) -> None:
        if not self.is_monitor:
            raise Forbidden("Not monitor user")

    def may_see_vhost(self, vhost: str) -> bool:
        return self.is_monitor or self.users.may_access(self.user, vhost)

    def require_vhost(self, vhost: str) -> None:
        if not self.may_see_vhost(vhost):
            raise Forbidden("User not authorised to access virtual host")

    def may_see_connection(self, owner: str) -> bool:
        return self.is_monitor or owner == self.user.name


async def authenticate(
    users: UserStore,
    header: str | None,
    *,
    loopback: bool,
    peer: str = "",
    gate: LoginGate | None = None,
) -> Principal:
    """The principal for a request, or :class:`NotAuthenticated` (401 with a challenge)."""
    credentials = basic_credentials(header)
    if credentials is None:
        raise NotAuthenticated("Not authorized")
    user = None
    if await _verified(users, gate, *credentials, peer=peer):
        user = users.users.get(credentials[0])
    if user is None:
        raise NotAuthenticated("Login failed")
    if user.loopback_only and not loopback:
        # As over AMQP: guest may only log in from this machine.
        raise NotAuthenticated(f"User '{user.name}' can only connect via localhost")
    if not user.tags & MANAGEMENT_TAGS:
        raise NotAuthenticated("Not management user")
    return Principal(user, users)


async def _verified(
    users: UserStore, gate: LoginGate | None, name: str, password: str, *, peer: str
) -> bool:
    """Whether the password is the user's: through the login gate when the broker has one
    (a password not verified before is checked off the event loop, in turn with AMQP
    logins and under the same budget per address, docs/security.md)."""
    if gate is None:
        return users.authenticate(name, password) is not None
    answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def answer(outcome: object) -> None:
        if isinstance(outcome, BaseException):
            answered.set_exception(outcome)
        else:
            answered.set_result(outcome is True)

    attempt = gate.verify(name, password, peer=peer, mechanism="HTTP basic", answer=answer)
    try:
        return await answered
    finally:
        if attempt is not None:
            attempt.cancel()  # the request was cancelled meanwhile: drop its check


class NotAuthenticated(Exception):
    """No valid credentials: 401 with a ``WWW-Authenticate`` challenge."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
