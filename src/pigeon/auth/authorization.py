"""The one authorization path: may this user do this to this resource?

Every AMQP operation and every management API call asks :func:`authorize`
(or :func:`authorize_any` for passive declares, :func:`check_vhost` at
``connection.open``). A refusal raises :class:`~pigeon.errors.AccessRefused`
(or ``NotAllowed`` for a vhost) with RabbitMQ's exact text, and writes an
audit line.

Who the user is and what they may do is an :class:`Identity`: a name, tags
and an :class:`Authority` that answers the questions. Users of the internal
store get :class:`StoreAuthority` (configure/write/read regular expressions
per vhost, RabbitMQ's access-control model); token users get the scopes of
their token (:mod:`pigeon.auth.tokens`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from pigeon.auth.users import UserStore
from pigeon.errors import AccessRefused, NotAllowed

if TYPE_CHECKING:
    from pigeon.auth.audit import AuditLog

# RabbitMQ checks the default exchange under this name (rabbit_access_control).
DEFAULT_EXCHANGE = "amq.default"


class Permission(Enum):
    """The three kinds of access of RabbitMQ's model."""

    CONFIGURE = "configure"
    WRITE = "write"
    READ = "read"


class Resource(Enum):
    QUEUE = "queue"
    EXCHANGE = "exchange"


class Authority(Protocol):
    """What a user may do: answers only, no exceptions, no side effects."""

    def vhost_allowed(self, vhost: str) -> bool: ...

    def resource_allowed(
        self, vhost: str, permission: Permission, resource: Resource, name: str
    ) -> bool: ...

    def topic_allowed(
        self, vhost: str, permission: Permission, exchange: str, routing_key: str
    ) -> bool: ...


@dataclass
class Identity:
    """An authenticated user of one connection or one HTTP request."""

    name: str
    authority: Authority
    tags: frozenset[str] = frozenset()
    peer: str = ""
    mechanism: str = ""
    audit: AuditLog | None = field(default=None, repr=False)
    # Seconds since the epoch when a token-based identity stops being valid.
    expires_at: float | None = None


@lru_cache(maxsize=2048)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # an invalid pattern grants nothing


def pattern_matches(pattern: str, name: str) -> bool:
    """RabbitMQ's rule: an unanchored regex search; the empty pattern matches nothing."""
    if not pattern:
        return False
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(name) is not None


class StoreAuthority:
    """Permissions of a user of the internal store, read live so changes apply at once."""

    def __init__(self, users: UserStore, name: str) -> None:
        self.users = users
        self.name = name

    def vhost_allowed(self, vhost: str) -> bool:
        return self.name in self.users.users and self.users.permission(vhost, self.name) is not None

    def resource_allowed(
        self, vhost: str, permission: Permission, resource: Resource, name: str
    ) -> bool:
        if self.name not in self.users.users:
            return False  # deleted while connected
        granted = self.users.permission(vhost, self.name)
        if granted is None:
            return False
        return pattern_matches(getattr(granted, permission.value), name)

    def topic_allowed(
        self, vhost: str, permission: Permission, exchange: str, routing_key: str
    ) -> bool:
        granted = self.users.topic_permission(vhost, self.name, exchange)
        if granted is None:
            return True  # RabbitMQ: no topic permission for the exchange means no restriction
        pattern = getattr(granted, permission.value, "")
        pattern = pattern.replace("{username}", re.escape(self.name))
        pattern = pattern.replace("{vhost}", re.escape(vhost))
        return pattern_matches(pattern, routing_key)


class PermissionRefused(AccessRefused):
    """A user's permissions refuse the operation (not a rule of the core): 403 over AMQP
    like any AccessRefused; the management API answers it 401, as RabbitMQ's does."""


def _refuse(user: Identity, vhost: str, text: str, **fields: object) -> PermissionRefused:
    if user.audit is not None:
        user.audit.access_refused(user.name, user.peer, vhost, text, **fields)
    return PermissionRefused(text)


def authorize(
    user: Identity,
    vhost: str,
    permission: Permission,
    resource: Resource,
    name: str,
    routing_key: str | None = None,
) -> None:
    """Raise AccessRefused unless ``user`` has ``permission`` on the resource.

    Pass ``routing_key`` when the resource is a *topic* exchange: the user's
    topic permission for that exchange is then checked too.
    """
    if resource is Resource.EXCHANGE and not name:
        name = DEFAULT_EXCHANGE
    authority = user.authority
    if not authority.resource_allowed(vhost, permission, resource, name):
        raise _refuse(
            user,
            vhost,
            f"access to {resource.value} '{name}' in vhost '{vhost}' refused for "
            f"user '{user.name}'",
            permission=permission.value,
            resource=resource.value,
            name=name,
        )
    if routing_key is not None and not authority.topic_allowed(
        vhost, permission, name, routing_key
    ):
        raise _refuse(
            user,
            vhost,
            f"{permission.value} access to topic '{routing_key}' in exchange "
            f"'{name}' in vhost '{vhost}' refused for user '{user.name}'",
            permission=permission.value,
            resource="topic",
            name=name,
            routing_key=routing_key,
        )


def authorize_any(user: Identity, vhost: str, resource: Resource, name: str) -> None:
    """Passive declares: any of configure, write or read on the resource will do
    (RabbitMQ 4.2.7+; this stops enumerating resources by passive declares)."""
    if resource is Resource.EXCHANGE and not name:
        name = DEFAULT_EXCHANGE
    allowed = user.authority.resource_allowed
    if not any(allowed(vhost, p, resource, name) for p in Permission):
        raise _refuse(
            user,
            vhost,
            f"access to {resource.value} '{name}' in vhost '{vhost}' refused for "
            f"user '{user.name}'",
            permission="any",
            resource=resource.value,
            name=name,
        )


def check_vhost(user: Identity, vhost: str) -> None:
    """connection.open: NotAllowed (530) unless the user has permissions in ``vhost``."""
    if not user.authority.vhost_allowed(vhost):
        text = f"access to vhost '{vhost}' refused for user '{user.name}'"
        if user.audit is not None:
            user.audit.access_refused(user.name, user.peer, vhost, text, resource="vhost")
        raise NotAllowed(text)
