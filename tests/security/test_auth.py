"""Users, authorization, tokens, the audit log and limits, without sockets."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pika
import pika.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pigeon.auth import operations
from pigeon.auth.audit import AuditLog
from pigeon.auth.authenticator import Authenticator, LoginRefused, exposure_warning
from pigeon.auth.authorization import (
    Identity,
    Permission,
    Resource,
    StoreAuthority,
    authorize,
    pattern_matches,
)
from pigeon.auth.tokens import TokenSettings, TokenVerifier, parse_scopes, wildcard_matches
from pigeon.auth.users import (
    SCRYPT_HASHING,
    SHA256_HASHING,
    PermissionSet,
    TopicPermission,
    UserStore,
    check_password,
    hash_password,
    parse_password_hash,
)
from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.errors import AccessRefused, NotAllowed
from pigeon.operations.limits import ConnectionLimits

# -- password hashes ------------------------------------------------------------------


def _rabbitmq_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's documented scheme, written out here independently of Pigeon."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def test_new_hashes_use_scrypt_and_never_hold_the_password() -> None:
    stored = hash_password("s3cret!")
    assert stored.startswith(b"$scrypt$ln=14,r=8,p=1$")
    assert b"s3cret" not in stored
    assert stored != hash_password("s3cret!")  # salted
    assert check_password("s3cret!", stored)
    assert not check_password("s3cret", stored)


def test_rabbitmq_hashes_from_definitions_are_accepted() -> None:
    imported = parse_password_hash(
        _rabbitmq_hash("from-rabbit", b"\x01\x02\x03\x04"), SHA256_HASHING
    )
    users = UserStore()
    users.add_user("r", "placeholder")
    users.users["r"].password_hash = imported
    assert users.authenticate("r", "from-rabbit") is not None
    assert users.authenticate("r", "wrong") is None
    assert users.users["r"].hashing_algorithm == SHA256_HASHING
    assert users.users["r"].password_hash == imported  # exported back unchanged


def test_password_hash_import_checks_its_input() -> None:
    ours = hash_password("x")
    assert parse_password_hash(base64.b64encode(ours).decode(), SCRYPT_HASHING) == ours
    assert parse_password_hash("", None) == b""
    for value, algorithm in (
        ("!!", None),
        (base64.b64encode(b"short").decode(), None),
        (_rabbitmq_hash("x", b"abcd"), "rabbit_password_hashing_md5"),
    ):
        with pytest.raises(ValueError):
            parse_password_hash(value, algorithm)


def test_empty_hash_means_no_password_login() -> None:
    users = UserStore()
    users.add_user("nopw", "x")
    users.users["nopw"].password_hash = b""
    assert users.authenticate("nopw", "") is None


def test_a_default_users_hash_is_computed_once_per_process() -> None:
    """Every embedded broker creates the same default user: its scrypt hash is reused,
    not recomputed (most of a broker's start-up), and still checks only its password.
    Users added otherwise get a fresh salt each time."""
    first, second = UserStore(), UserStore()  # as two brokers of one process
    first.add_user("guest", "guest", reuse_hash=True)
    second.add_user("guest", "guest", reuse_hash=True)
    reused = first.users["guest"].password_hash
    assert second.users["guest"].password_hash == reused
    assert check_password("guest", reused) and not check_password("guest2", reused)
    first.add_user("app", "guest")
    first.add_user("custom", "other", reuse_hash=True)
    assert first.users["app"].password_hash != reused
    assert check_password("other", first.users["custom"].password_hash)


def test_hostile_scrypt_parameters_are_refused_not_run() -> None:
    assert not check_password("x", b"$scrypt$ln=40,r=8,p=1$AAAA$AAAA")


# -- authorization -------------------------------------------------------------------


def _identity(users: UserStore, name: str, audit: AuditLog | None = None) -> Identity:
    return Identity(name, StoreAuthority(users, name), peer="127.0.0.1:1", audit=audit)


def test_rabbitmq_regex_semantics() -> None:
    assert pattern_matches("^q-", "q-1") and pattern_matches("q", "my-q-x")  # unanchored
    assert not pattern_matches("", "anything") and not pattern_matches("^$", "x")
    assert not pattern_matches("(", "(")  # an invalid pattern grants nothing


def test_authorize_refuses_with_rabbitmqs_text_and_an_audit_line() -> None:
    users = UserStore()
    users.add_user("u", "pw")
    users.set_permission("/", "u", PermissionSet(configure="^mine-", write=".*", read=".*"))
    stream = io.StringIO()
    user = _identity(users, "u", AuditLog(stream))
    authorize(user, "/", Permission.CONFIGURE, Resource.QUEUE, "mine-1")
    with pytest.raises(AccessRefused) as refused:
        authorize(user, "/", Permission.CONFIGURE, Resource.QUEUE, "q")
    assert refused.value.text == "access to queue 'q' in vhost '/' refused for user 'u'"
    line = json.loads(stream.getvalue())
    assert line["event"] == "access.refused" and line["user"] == "u"
    assert line["peer"] == "127.0.0.1:1" and line["permission"] == "configure"
    with pytest.raises(AccessRefused, match="vhost 'other'"):
        authorize(user, "other", Permission.READ, Resource.QUEUE, "q")


def test_permission_changes_apply_to_live_identities() -> None:
    users = UserStore()
    users.add_user("u", "pw")
    users.set_permission("/", "u")
    user = _identity(users, "u")
    operations.consume(user, "/", "q")
    users.set_permission("/", "u", PermissionSet(read="^$"))
    with pytest.raises(AccessRefused):
        operations.consume(user, "/", "q")
    users.set_permission("/", "u")
    del users.users["u"]
    with pytest.raises(AccessRefused):
        operations.consume(user, "/", "q")


def test_topic_permissions_expand_username_and_vhost() -> None:
    users = UserStore()
    users.add_user("ann", "pw")
    users.set_permission("/", "ann")
    users.set_topic_permission(
        "/", "ann", TopicPermission("t", write="^{username}\\.", read="^{vhost}")
    )
    user = _identity(users, "ann")
    operations.publish(user, "/", "t", "ann.x", "topic")
    operations.publish(user, "/", "other", "bob.x", "topic")  # no topic permission there
    operations.publish(user, "/", "t", "bob.x", "direct")  # only topic exchanges
    with pytest.raises(AccessRefused) as refused:
        operations.publish(user, "/", "t", "bob.x", "topic")
    assert refused.value.text == (
        "write access to topic 'bob.x' in exchange 't' in vhost '/' refused for user 'ann'"
    )
    operations.queue_bind(user, "/", "q", "t", "/.x", "topic")


def test_passive_declare_needs_any_permission() -> None:
    users = UserStore()
    users.add_user("r", "pw")
    users.set_permission("/", "r", PermissionSet(configure="", write="", read="^q$"))
    user = _identity(users, "r")
    operations.queue_declare(user, "/", "q", passive=True)
    with pytest.raises(AccessRefused):
        operations.queue_declare(user, "/", "other", passive=True)
    with pytest.raises(AccessRefused):
        operations.queue_declare(user, "/", "q")


# -- authentication ------------------------------------------------------------------------


def test_guest_only_from_loopback_and_login_audit() -> None:
    users = UserStore()
    users.add_user("guest", "guest", loopback_only=True)
    users.set_permission("/", "guest")
    stream = io.StringIO()
    auth = Authenticator(users, audit=AuditLog(stream))
    auth.login("PLAIN", ("guest", "guest"), peer="127.0.0.1:5", loopback=True)
    with pytest.raises(LoginRefused) as refused:
        auth.login("PLAIN", ("guest", "guest"), peer="10.0.0.5:5", loopback=False)
    assert refused.value.text == "ACCESS_REFUSED - User 'guest' can only connect via localhost"
    with pytest.raises(LoginRefused):
        auth.login("PLAIN", ("guest", "nope"), peer="127.0.0.1:6", loopback=True)
    with pytest.raises(LoginRefused):
        auth.login("ANONYMOUS", None, peer="127.0.0.1:7", loopback=True)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "login.succeeded",
        "login.failed",
        "login.failed",
        "login.failed",
    ]
    assert "nope" not in stream.getvalue() and events[1]["peer"] == "10.0.0.5:5"


def test_exposure_warning_when_only_guest_listens_beyond_loopback() -> None:
    users = UserStore()
    users.add_user("guest", "guest", loopback_only=True)
    assert exposure_warning("127.0.0.1", users) is None
    assert exposure_warning("::1", users) is None
    assert "guest" in (exposure_warning("0.0.0.0", users) or "")
    users.add_user("app", "pw")
    assert exposure_warning("0.0.0.0", users) is None


# -- tokens ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


def _token(key: Any, **claims: Any) -> str:
    body = {"sub": "svc", "aud": "rabbitmq", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_scope_format() -> None:
    scopes, tags = parse_scopes(
        [
            "rabbitmq.read:*/*",
            "rabbitmq.write:%2F/orders-*/eu.*",
            "rabbitmq.tag:monitoring",
            "other.read:*/*",
            "rabbitmq.x:a/b",
        ],
        "rabbitmq",
    )
    assert tags == {"monitoring"}
    assert [(s.permission.value, s.vhost, s.name, s.routing_key) for s in scopes] == [
        ("read", "*", "*", "*"),
        ("write", "/", "orders-*", "eu.*"),
    ]
    assert wildcard_matches("orders-*", "orders-1") and not wildcard_matches("o.*", "ox")


def test_token_logins(signing: tuple[rsa.RSAPrivateKey, str]) -> None:
    key, public = signing
    auth = Authenticator(UserStore(), tokens=TokenVerifier(TokenSettings(keys={"k1": public})))
    token = _token(key, scope="rabbitmq.read:%2F/q-* rabbitmq.write:%2F/x/eu.* rabbitmq.tag:x")
    user = auth.login("PLAIN", ("ignored", token), peer="p", loopback=False)
    assert user.name == "svc" and user.tags == {"x"} and user.expires_at is not None
    auth.check_vhost(user, "/")
    with pytest.raises(NotAllowed):
        auth.check_vhost(user, "other")
    operations.consume(user, "/", "q-1")
    operations.publish(user, "/", "x", "eu.a", "topic")
    with pytest.raises(AccessRefused):
        operations.publish(user, "/", "x", "us.a", "topic")
    with pytest.raises(AccessRefused):
        operations.consume(user, "/", "other")
    for bad in (
        _token(key, exp=int(time.time()) - 5),
        _token(key, aud="someone-else"),
        _token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        token[:-4] + "AAAA",
    ):
        with pytest.raises(LoginRefused):
            auth.login("PLAIN", ("svc", bad), peer="p", loopback=False)


def test_update_secret(signing: tuple[rsa.RSAPrivateKey, str]) -> None:
    key, public = signing
    auth = Authenticator(UserStore(), tokens=TokenVerifier(TokenSettings(keys={"k1": public})))
    user = auth.login(
        "PLAIN", ("", _token(key, scope="rabbitmq.read:*/*")), peer="p", loopback=True
    )
    later = auth.refresh(user, _token(key, scope="rabbitmq.write:*/*", exp=int(time.time()) + 3600))
    assert later.expires_at is not None and user.expires_at is not None
    assert later.expires_at > user.expires_at
    operations.publish(later, "/", "x")
    with pytest.raises(NotAllowed, match="another user"):
        auth.refresh(user, _token(key, sub="mallory"))
    with pytest.raises(NotAllowed):
        auth.refresh(user, "not-a-token")


def test_jwks_file(tmp_path: Path, signing: tuple[rsa.RSAPrivateKey, str]) -> None:
    key, _ = signing
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    verifier = TokenVerifier(TokenSettings(jwks_file=path))
    assert verifier.verify(_token(key)).username == "svc"


# -- limits and the audit log over AMQP --------------------------------------------------------


def test_connection_limits() -> None:
    limits = ConnectionLimits(max_connections=2, per_vhost={"/": 1}, per_user={"u": 1})
    assert limits.admit() and limits.admit() and not limits.admit()
    limits.leave()
    assert limits.admit()
    limits.open("/", "u")
    with pytest.raises(NotAllowed, match=r"connection limit \(1\) is reached"):
        limits.open("/", "v")
    with pytest.raises(NotAllowed, match="user connection limit"):
        limits.open("other", "u")
    limits.close("/", "u")
    limits.open("/", "v")


def test_audit_log_over_amqp(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=None, audit_log=path
    )
    with Broker.in_thread(config) as broker:
        url = f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/"
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                channel.queue_declare("amq.reserved")  # refused by the core, not authz
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(
                pika.URLParameters(f"amqp://guest:wrong@127.0.0.1:{broker.amqp_port}/")
            )
    events = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["login.succeeded", "connection.opened"]
    assert "connection.closed" in kinds and kinds[-1] == "login.failed"
    assert all(e["ts"] and "peer" in e for e in events)
    assert "wrong" not in path.read_text()
