"""Users, their passwords and tags, and which vhosts they may use.

Passwords are kept as salted SHA-256 hashes (RabbitMQ's default scheme), never
in clear. The built-in ``guest`` user may only log in from loopback, as in
RabbitMQ.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field


def hash_password(password: str, salt: bytes | None = None) -> bytes:
    salt = os.urandom(4) if salt is None else salt
    return salt + hashlib.sha256(salt + password.encode()).digest()


def check_password(password: str, stored: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, stored[:4]), stored)


@dataclass(slots=True)
class User:
    name: str
    password_hash: bytes
    tags: frozenset[str] = frozenset()
    loopback_only: bool = False


@dataclass(slots=True)
class Permission:
    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"


@dataclass
class UserStore:
    users: dict[str, User] = field(default_factory=dict)
    # (vhost, user) -> permission
    permissions: dict[tuple[str, str], Permission] = field(default_factory=dict)

    def add_user(self, name: str, password: str, tags: frozenset[str] = frozenset(),
                 *, loopback_only: bool = False) -> User:
        user = User(name, hash_password(password), tags, loopback_only)
        self.users[name] = user
        return user

    def set_permission(self, vhost: str, user: str, permission: Permission | None = None) -> None:
        self.permissions[(vhost, user)] = permission or Permission()

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.users.get(name)
        if user is None or not check_password(password, user.password_hash):
            return None
        return user

    def may_access(self, user: User, vhost: str) -> bool:
        return (vhost, user.name) in self.permissions


def default_users(vhost: str = "/") -> UserStore:
    """guest/guest, administrator, loopback only: RabbitMQ's out-of-the-box user."""
    store = UserStore()
    store.add_user("guest", "guest", frozenset({"administrator"}), loopback_only=True)
    store.set_permission(vhost, "guest")
    return store
