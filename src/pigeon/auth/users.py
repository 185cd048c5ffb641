"""Users, their passwords and tags, and their permissions in each vhost.

Passwords are never kept in clear. New passwords are hashed with scrypt
(RFC 7914), a standard memory-hard KDF, and stored as a self-describing
string (``$scrypt$ln=14,r=8,p=1$salt$hash``). Hashes imported from RabbitMQ
definitions (``rabbit_password_hashing_sha256``: a 4-byte salt followed by
SHA-256 of salt + password) are accepted and kept as they are, so an exported
RabbitMQ user logs in unchanged and exports back unchanged.

RabbitMQ cannot check a scrypt hash. With ``definitions_password_hashing =
"rabbitmq"`` a password set in Pigeon also gets a RabbitMQ-compatible hash kept
beside the scrypt one (``User.rabbit_hash``): logins still check scrypt, and
definitions carry the compatible hash so the user moves to RabbitMQ. See
:func:`user_row` for the shape both share.

scrypt costs tens of milliseconds on purpose, so a verified password is
remembered (as a keyed HMAC, never in clear) and later logins of the same
user with the same password cost microseconds.

The built-in ``guest`` user may only log in from loopback, as in RabbitMQ.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

SHA256_HASHING = "rabbit_password_hashing_sha256"
SCRYPT_HASHING = "pigeon_password_hashing_scrypt"
_SCRYPT_PREFIX = b"$scrypt$"
# Percival's "interactive login" parameters (scrypt paper, §7): 16 MiB, ~60 ms.
SCRYPT_LOG_N = 14
SCRYPT_R = 8
SCRYPT_P = 1
_LEGACY_SALT = 4
_VERIFIED_CACHE_SIZE = 1024


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)


def hash_password(password: str, salt: bytes | None = None, *, log_n: int = SCRYPT_LOG_N) -> bytes:
    """A new scrypt hash of ``password`` in Pigeon's self-describing format."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=1 << log_n, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    params = f"ln={log_n},r={SCRYPT_R},p={SCRYPT_P}".encode()
    return _SCRYPT_PREFIX + params + b"$" + _b64(salt) + b"$" + _b64(digest)


@functools.lru_cache(maxsize=8)
def reused_hash(password: str, log_n: int = SCRYPT_LOG_N) -> bytes:
    """A scrypt hash of ``password`` computed once per process, for a default user: every
    embedded broker (the pytest plugin starts one per test) creates the same user, and
    hashing its password again each time was most of a broker's start-up. Brokers of one
    process share the salt of that one password, which reveals nothing the hash does not."""
    return hash_password(password, log_n=log_n)


def rabbit_sha256_hash(password: str, salt: bytes | None = None) -> bytes:
    """RabbitMQ's own scheme, for tests and for interoperating with its tools."""
    salt = os.urandom(_LEGACY_SALT) if salt is None else salt
    return salt + hashlib.sha256(salt + password.encode()).digest()


def hashing_algorithm(stored: bytes) -> str:
    """The definitions' ``hashing_algorithm`` name for a stored hash."""
    return SCRYPT_HASHING if stored.startswith(_SCRYPT_PREFIX) else SHA256_HASHING


def _check_scrypt(password: str, stored: bytes) -> bool:
    try:
        _, _, params, salt, digest = stored.split(b"$")
        values = dict(p.split(b"=") for p in params.split(b","))
        log_n, r, p = int(values[b"ln"]), int(values[b"r"]), int(values[b"p"])
        salt, digest = _unb64(salt), _unb64(digest)
    except (ValueError, KeyError):
        return False
    if not (1 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False  # refuse parameters that would let a stored hash exhaust memory
    computed = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=1 << log_n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=len(digest),
    )
    return hmac.compare_digest(computed, digest)


def check_password(password: str, stored: bytes) -> bool:
    """Whether ``password`` matches ``stored`` (scrypt, or RabbitMQ's salted SHA-256)."""
    if stored.startswith(_SCRYPT_PREFIX):
        return _check_scrypt(password, stored)
    if len(stored) != _LEGACY_SALT + 32:
        return False  # an empty hash: no password login, as in RabbitMQ
    return hmac.compare_digest(rabbit_sha256_hash(password, stored[:_LEGACY_SALT]), stored)


@dataclass(slots=True)
class User:
    name: str
    password_hash: bytes
    tags: frozenset[str] = frozenset()
    loopback_only: bool = False
    # max-connections, max-channels (``/api/user-limits``); negative means no limit.
    limits: dict[str, int] = field(default_factory=dict)
    # RabbitMQ's salted SHA-256 of the same password, kept beside a scrypt hash only
    # with definitions_password_hashing = "rabbitmq" (weaker: it is what RabbitMQ reads).
    rabbit_hash: bytes | None = field(default=None, repr=False)

    @property
    def hashing_algorithm(self) -> str:
        return hashing_algorithm(self.password_hash)

    @property
    def portable_hash(self) -> bytes | None:
        """The hash RabbitMQ can check, or None when only Pigeon can (scrypt alone)."""
        if self.hashing_algorithm == SHA256_HASHING:
            return self.password_hash
        return self.rabbit_hash


@dataclass(slots=True)
class PermissionSet:
    """A user's configure/write/read regular expressions in one vhost."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"


# The name the management API and definitions code import.
Permission = PermissionSet


@dataclass(slots=True, frozen=True)
class TopicPermission:
    """Write/read patterns for routing keys on one topic exchange (RabbitMQ's
    topic authorisation); ``{username}`` and ``{vhost}`` are expanded."""

    exchange: str
    write: str = ".*"
    read: str = ".*"


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """One password to compare with one stored hash: slow (scrypt) and pure, so it may
    run on any thread. Checks with equal ``key`` have equal outcomes (same user, same
    stored hash, same password), so one run can answer all of them."""

    name: str
    stored: bytes = field(repr=False)
    password: str = field(repr=False)
    key: tuple[str, bytes, bytes] = field(repr=False)

    def run(self) -> bool:
        return check_password(self.password, self.stored)


class _Verified:
    """The password last verified for each user, as an HMAC under a per-process key.

    One entry per user, valid only while the user's stored hash is the one it was
    verified against: a password change or a deleted and re-created user never
    matches an old entry, and a wrong password never matches a right one's HMAC.
    """

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._seen: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()

    def mac(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode(), hashlib.sha256).digest()

    def known(self, name: str, stored: bytes, password: str) -> bool:
        entry = self._seen.get(name)
        if entry is None:
            return False
        if entry[0] != stored:  # the password was changed since
            del self._seen[name]
            return False
        return hmac.compare_digest(entry[1], self.mac(password))

    def remember(self, name: str, stored: bytes, mac: bytes) -> None:
        self._seen[name] = (stored, mac)
        self._seen.move_to_end(name)
        while len(self._seen) > _VERIFIED_CACHE_SIZE:
            self._seen.popitem(last=False)

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)


@dataclass
class UserStore:
    users: dict[str, User] = field(default_factory=dict)
    # (vhost, user) -> permission
    permissions: dict[tuple[str, str], PermissionSet] = field(default_factory=dict)
    # (vhost, user) -> exchange -> topic permission
    topic_permissions: dict[tuple[str, str], dict[str, TopicPermission]] = field(
        default_factory=dict
    )
    _verified: _Verified = field(default_factory=_Verified, repr=False)
    # definitions_password_hashing = "rabbitmq": passwords set here also get a
    # RabbitMQ-compatible hash (User.rabbit_hash) so they move to RabbitMQ.
    rabbit_compatible: bool = field(default=False, compare=False)
    # Called after every change made through the methods below (the broker saves the
    # users then, see pigeon.accounts): change users and permissions only through them.
    on_change: Callable[[], object] | None = field(default=None, repr=False, compare=False)
    _batching: int = field(default=0, repr=False, compare=False)
    _changed_in_batch: bool = field(default=False, repr=False, compare=False)

    def _changed(self) -> None:
        if self._batching:
            self._changed_in_batch = True
        elif self.on_change is not None:
            self.on_change()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Many changes, one ``on_change`` at the end (a definitions import: saving the
        users after each of thousands of rows would cost as many whole documents)."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching and self._changed_in_batch:
                self._changed_in_batch = False
                self._changed()

    def new_user(
        self,
        name: str,
        password: str,
        tags: frozenset[str] = frozenset(),
        *,
        loopback_only: bool = False,
        reuse_hash: bool = False,
    ) -> User:
        """A user with ``password`` hashed as this store's setting asks (not stored yet);
        ``reuse_hash`` for a default user's password (:func:`reused_hash`)."""
        rabbit = rabbit_sha256_hash(password) if self.rabbit_compatible else None
        strong = reused_hash(password) if reuse_hash else hash_password(password)
        return User(name, strong, tags, loopback_only, rabbit_hash=rabbit)

    def add_user(
        self,
        name: str,
        password: str,
        tags: frozenset[str] = frozenset(),
        *,
        loopback_only: bool = False,
        reuse_hash: bool = False,
    ) -> User:
        user = self.new_user(
            name, password, tags, loopback_only=loopback_only, reuse_hash=reuse_hash
        )
        self.put_user(user)
        return user

    def put_user(self, user: User) -> None:
        """Create or replace a user; a new password forgets the one verified before."""
        previous = self.users.get(user.name)
        if previous is None or previous.password_hash != user.password_hash:
            self._verified.forget(user.name)
        self.users[user.name] = user
        self._changed()

    def delete_user(self, name: str) -> None:
        """Remove a user with its permissions (as RabbitMQ does) and its verified password."""
        self.users.pop(name, None)
        self._verified.forget(name)
        for key in [k for k in self.permissions if k[1] == name]:
            del self.permissions[key]
        for key in [k for k in self.topic_permissions if k[1] == name]:
            del self.topic_permissions[key]
        self._changed()

    def set_permission(
        self, vhost: str, user: str, permission: PermissionSet | None = None
    ) -> None:
        self.permissions[(vhost, user)] = permission or PermissionSet()
        self._changed()

    def delete_permission(self, vhost: str, user: str) -> bool:
        """Remove a user's permission in a vhost; False if there was none."""
        if self.permissions.pop((vhost, user), None) is None:
            return False
        self._changed()
        return True

    def delete_vhost_permissions(self, vhost: str) -> None:
        """Every permission in a vhost that is being deleted."""
        for key in [k for k in self.permissions if k[0] == vhost]:
            del self.permissions[key]
        for key in [k for k in self.topic_permissions if k[0] == vhost]:
            del self.topic_permissions[key]
        self._changed()

    def set_topic_permission(self, vhost: str, user: str, permission: TopicPermission) -> None:
        self.topic_permissions.setdefault((vhost, user), {})[permission.exchange] = permission
        self._changed()

    def clear_topic_permissions(self, vhost: str, user: str, exchange: str | None = None) -> None:
        if exchange is None:
            self.topic_permissions.pop((vhost, user), None)
        else:
            self.topic_permissions.get((vhost, user), {}).pop(exchange, None)
        self._changed()

    def set_limits(self, user: str, limits: dict[str, int]) -> None:
        """Replace a user's limits (max-connections, max-channels)."""
        self.users[user].limits = dict(limits)
        self._changed()

    def permission(self, vhost: str, user: str) -> PermissionSet | None:
        return self.permissions.get((vhost, user))

    def topic_permission(self, vhost: str, user: str, exchange: str) -> TopicPermission | None:
        return self.topic_permissions.get((vhost, user), {}).get(exchange)

    def cached(self, name: str, password: str) -> User | None:
        """The user, if this very password was verified for its current hash (an HMAC,
        microseconds); None says nothing either way."""
        user = self.users.get(name)
        if user is not None and self._verified.known(name, user.password_hash, password):
            return user
        return None

    def password_check(self, name: str, password: str) -> PasswordCheck | None:
        """The slow check still to run for ``name``, or None if there is no such user."""
        user = self.users.get(name)
        if user is None:
            return None
        stored = user.password_hash
        return PasswordCheck(name, stored, password, (name, stored, self._verified.mac(password)))

    def checked(self, check: PasswordCheck, ok: bool) -> User | None:
        """The outcome of ``check``: the user if it passed and the user's hash is still the
        one checked (a password changed meanwhile refuses), remembered for next time."""
        user = self.users.get(check.name)
        if not ok or user is None or user.password_hash != check.stored:
            return None
        self._verified.remember(check.name, check.stored, check.key[2])
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        """All in one, on the calling thread: the cache, else the slow check."""
        user = self.cached(name, password)
        if user is not None:
            return user
        check = self.password_check(name, password)
        return None if check is None else self.checked(check, check.run())

    def may_access(self, user: User, vhost: str) -> bool:
        return (vhost, user.name) in self.permissions

    def definitions(self) -> dict[str, Any]:
        """Users and permissions as RabbitMQ's definitions export shapes them."""
        return {
            "users": [user_row(u) for u in self.users.values()],
            "permissions": [
                {
                    "user": user,
                    "vhost": vhost,
                    "configure": p.configure,
                    "write": p.write,
                    "read": p.read,
                }
                for (vhost, user), p in self.permissions.items()
            ],
            "topic_permissions": [
                {
                    "user": user,
                    "vhost": vhost,
                    "exchange": t.exchange,
                    "write": t.write,
                    "read": t.read,
                }
                for (vhost, user), by_x in self.topic_permissions.items()
                for t in by_x.values()
            ],
        }


def user_row(user: User) -> dict[str, Any]:
    """A user as a definitions row: RabbitMQ's hash when there is one it can check (so
    RabbitMQ imports the row and the user logs in), with the scrypt hash beside it as
    ``pigeon_password_hash`` (RabbitMQ ignores the key; Pigeon keeps the strong hash)."""
    portable = user.portable_hash
    shown = user.password_hash if portable is None else portable
    row: dict[str, Any] = {
        "name": user.name,
        "password_hash": base64.b64encode(shown).decode(),
        "hashing_algorithm": hashing_algorithm(shown),
        "tags": sorted(user.tags),
        "limits": dict(user.limits),
    }
    if shown is not user.password_hash:
        row["pigeon_password_hash"] = base64.b64encode(user.password_hash).decode()
    return row


def user_from_row(row: dict[str, Any], tags: frozenset[str], loopback_only: bool = False) -> User:
    """The user a :func:`user_row` (or RabbitMQ's definitions row) describes; ValueError
    with the reason when a hash is not one Pigeon accepts."""
    value, algorithm = row["password_hash"], row.get("hashing_algorithm")
    if not isinstance(value, str) or not isinstance(algorithm, str | None):
        raise ValueError("password_hash and hashing_algorithm must be strings")
    given = parse_password_hash(value, algorithm)
    limits = {str(k): int(v) for k, v in (row.get("limits") or {}).items()}
    strong = row.get("pigeon_password_hash")
    if strong is None:
        return User(row["name"], given, tags, loopback_only, limits)
    if not isinstance(strong, str):
        raise ValueError("pigeon_password_hash must be a string")
    primary = parse_password_hash(strong, SCRYPT_HASHING)
    if hashing_algorithm(primary) != SCRYPT_HASHING or hashing_algorithm(given) != SHA256_HASHING:
        raise ValueError(
            f"pigeon_password_hash must be a scrypt hash beside a {SHA256_HASHING} password_hash"
        )
    return User(row["name"], primary, tags, loopback_only, limits, rabbit_hash=given)


def parse_password_hash(value: str, algorithm: str | None) -> bytes:
    """A stored hash from a definitions/API ``password_hash`` (base64) and its
    ``hashing_algorithm``; ValueError with the reason when it is not one we accept."""
    if algorithm not in (None, SHA256_HASHING, SCRYPT_HASHING):
        raise ValueError(
            f"unsupported hashing_algorithm {algorithm!r}; Pigeon accepts "
            f"{SHA256_HASHING} and {SCRYPT_HASHING}"
        )
    if value == "":
        return b""  # no password: the user cannot log in with one, as in RabbitMQ
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("password_hash is not valid base64") from None
    if raw.startswith(_SCRYPT_PREFIX):
        if raw.count(b"$") != 4:
            raise ValueError("password_hash is not a well-formed scrypt hash")
        return raw
    if len(raw) != _LEGACY_SALT + 32:
        raise ValueError("password_hash must be a 4-byte salt and a SHA-256 digest")
    return raw
