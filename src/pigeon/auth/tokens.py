"""OAuth 2.0 / JWT access tokens as passwords, with RabbitMQ's scope format.

A client sends the token as the password (PLAIN or AMQPLAIN; the user name
is ignored, as in RabbitMQ's OAuth 2 backend). The signature is verified
against configured keys or a JWKS file (the ``kid`` header picks the key),
``exp`` is required and checked, and ``aud`` must name the resource server
(``rabbitmq`` by default). Scopes (``scope`` claim, space-separated or a
list) grant permissions in RabbitMQ's format, where ``*`` is a wildcard and
the vhost is percent-encoded (``%2F`` is ``/``)::

    rabbitmq.read:*/*                 read on every resource of every vhost
    rabbitmq.write:%2F/orders-*       write on orders-... in vhost /
    rabbitmq.write:%2F/events/eu.*    topic write on exchange events, keys eu....
    rabbitmq.tag:administrator        the administrator tag

Requires PyJWT (``pip install 'pigeon-broker[tokens]'``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pigeon.auth.authorization import Permission, Resource
from pigeon.errors import MissingPackage

ASYMMETRIC = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class InvalidToken(Exception):
    """The token is not one we accept; ``reason`` is for the log, not the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenSettings:
    resource_server_id: str = "rabbitmq"
    audience: str | None = None  # None: the resource server id
    keys: Mapping[str, str | bytes] = field(default_factory=dict)  # kid -> PEM (or secret)
    default_key: str | None = None  # kid of the key for tokens without a kid header
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] = ASYMMETRIC
    username_claims: tuple[str, ...] = ("sub", "client_id")
    extra_scopes_claim: str | None = None
    leeway: int = 0


@dataclass(frozen=True)
class Scope:
    permission: Permission
    vhost: str
    name: str
    routing_key: str = "*"


@lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)),
        re.DOTALL,
    )


def wildcard_matches(pattern: str, value: str) -> bool:
    """RabbitMQ's scope patterns: ``*`` matches any run of characters, the rest is literal."""
    return _wildcard(pattern).fullmatch(value) is not None


def parse_scopes(scopes: list[str], resource_server_id: str) -> tuple[list[Scope], frozenset[str]]:
    """Permission scopes and tags among ``scopes``; others are ignored."""
    prefix = resource_server_id + "."
    granted: list[Scope] = []
    tags: set[str] = set()
    for scope in scopes:
        if not scope.startswith(prefix):
            continue
        kind, sep, rest = scope[len(prefix) :].partition(":")
        if not sep:
            continue
        if kind == "tag":
            tags.add(rest)
            continue
        try:
            permission = Permission(kind)
        except ValueError:
            continue
        parts = [unquote(p) for p in rest.split("/")]
        if len(parts) in (2, 3) and all(parts):
            granted.append(Scope(permission, *parts))
    return granted, frozenset(tags)


class TokenAuthority:
    """Permissions granted by a token's scopes."""

    def __init__(self, scopes: list[Scope]) -> None:
        self.scopes = scopes

    def vhost_allowed(self, vhost: str) -> bool:
        return any(wildcard_matches(s.vhost, vhost) for s in self.scopes)

    def resource_allowed(
        self, vhost: str, permission: Permission, resource: Resource, name: str
    ) -> bool:
        return any(
            s.permission is permission
            and wildcard_matches(s.vhost, vhost)
            and wildcard_matches(s.name, name)
            for s in self.scopes
        )

    def topic_allowed(
        self, vhost: str, permission: Permission, exchange: str, routing_key: str
    ) -> bool:
        return any(
            s.permission is permission
            and wildcard_matches(s.vhost, vhost)
            and wildcard_matches(s.name, exchange)
            and wildcard_matches(s.routing_key, routing_key)
            for s in self.scopes
        )


@dataclass(frozen=True)
class VerifiedToken:
    username: str
    scopes: list[Scope]
    tags: frozenset[str]
    expires_at: float


def looks_like_jwt(secret: str) -> bool:
    return len(secret) < 65536 and _JWT_SHAPE.match(secret) is not None


class TokenVerifier:
    """Checks tokens against the configured keys; one per broker."""

    def __init__(self, settings: TokenSettings) -> None:
        try:
            import jwt  # PyJWT: optional, needed only when tokens are configured
        except ImportError:
            raise MissingPackage("[tokens]", "PyJWT", "tokens") from None

        self._jwt = jwt
        self.settings = settings
        self._keys: dict[str, Any] = dict(settings.keys)
        if settings.jwks_file is not None:
            jwks = jwt.PyJWKSet.from_json(settings.jwks_file.read_text())
            for key in jwks.keys:
                if key.key_id:
                    self._keys[key.key_id] = key.key

    def _key_for(self, token: str) -> Any:
        try:
            header = self._jwt.get_unverified_header(token)
        except self._jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from None
        kid = header.get("kid") or self.settings.default_key
        if kid is None and len(self._keys) == 1:
            kid = next(iter(self._keys))
        if kid not in self._keys:
            raise InvalidToken(f"no signing key with kid {kid!r}")
        return self._keys[kid]

    def verify(self, token: str) -> VerifiedToken:
        settings = self.settings
        audience = settings.audience or settings.resource_server_id
        try:
            claims = self._jwt.decode(
                token,
                self._key_for(token),
                algorithms=list(settings.algorithms),
                audience=audience,
                leeway=settings.leeway,
                options={"require": ["exp"]},
            )
        except self._jwt.PyJWTError as error:
            raise InvalidToken(f"token refused: {error}") from None
        username = next((str(claims[c]) for c in settings.username_claims if claims.get(c)), None)
        if username is None:
            raise InvalidToken(
                f"token has none of the user name claims {', '.join(settings.username_claims)}"
            )
        scopes, tags = parse_scopes(_scope_list(claims, settings), settings.resource_server_id)
        return VerifiedToken(username, scopes, tags, float(claims["exp"]))


def _scope_list(claims: Mapping[str, Any], settings: TokenSettings) -> list[str]:
    found: list[str] = []
    for key in ("scope", settings.extra_scopes_claim):
        value = claims.get(key) if key else None
        if isinstance(value, str):
            found.extend(value.split())
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str))
    return found


def remaining(expires_at: float, now: float | None = None) -> float:
    """Seconds until a token expires (negative once it has)."""
    return expires_at - (time.time() if now is None else now)


def settings_from_mapping(data: Mapping[str, Any]) -> TokenSettings:
    """TokenSettings from a TOML/JSON table (``[pigeon.tokens]``)."""
    keys = data.get("keys", {})
    if not isinstance(keys, Mapping):
        raise ValueError("tokens.keys must be a table of kid = PEM text")
    jwks = data.get("jwks_file")
    return TokenSettings(
        resource_server_id=str(data.get("resource_server_id", "rabbitmq")),
        audience=data.get("audience"),
        keys={str(k): str(v) for k, v in keys.items()},
        default_key=data.get("default_key"),
        jwks_file=Path(jwks) if jwks else None,
        algorithms=tuple(data.get("algorithms", ASYMMETRIC)),
        username_claims=tuple(data.get("username_claims", ("sub", "client_id"))),
        extra_scopes_claim=data.get("extra_scopes_claim"),
        leeway=int(data.get("leeway", 0)),
    )
