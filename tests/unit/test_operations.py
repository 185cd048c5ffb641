"""The operations layer on its own, without sockets: the rules every entry point gets.

(The same rules at the entry points, through real clients: tests/security/
test_entry_points.py.)
"""

from __future__ import annotations

import pytest
from glue_fakes import ManualClock

from pigeon.auth.authorization import Identity, PermissionRefused, StoreAuthority
from pigeon.auth.users import PermissionSet, UserStore
from pigeon.core.binding import DestinationKind
from pigeon.core.node import Node
from pigeon.errors import AccessRefused, PreconditionFailed
from pigeon.operations.client import Client
from pigeon.operations.replies import REPLY_TO_PREFIX, ReplyRegistry
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ

DLX = {"x-dead-letter-exchange": "amq.fanout"}


@pytest.fixture
def services() -> Services:
    node = Node(ManualClock(), vocabulary=RABBITMQ)
    node.add_vhost("/")
    users = UserStore()
    users.add_user("writer", "pw")
    users.set_permission("/", "writer")
    users.add_user("reader", "pw")
    users.set_permission("/", "reader", PermissionSet(write="^$"))
    users.add_user("proxy", "pw", frozenset({"impersonator"}))
    users.set_permission("/", "proxy")
    return Services(node=node, users=users)


def client(services: Services, user: str | None) -> Client:
    identity = None
    if user is not None:
        tags = services.users.users[user].tags
        identity = Identity(user, StoreAuthority(services.users, user), tags)
    return Client(services, services.node.vhost("/"), identity)


def test_a_dead_letter_exchange_needs_write_on_it(services: Services) -> None:
    with pytest.raises(PermissionRefused, match=r"exchange 'amq\.fanout'"):
        client(services, "reader").declare_queue("q", arguments=DLX)
    assert "q" not in services.node.vhost("/").queues
    assert client(services, "writer").declare_queue("q", arguments=DLX).queue.name == "q"


def test_the_programs_own_client_asks_no_permission_but_keeps_the_other_rules(
    services: Services,
) -> None:
    trusted = client(services, None)
    trusted.declare_queue("q", arguments=DLX)
    trusted.declare_exchange("ix", "fanout", internal=True)
    with pytest.raises(AccessRefused, match="internal exchange 'ix'") as refused:
        trusted.publish_target("ix", "", None)
    assert not isinstance(refused.value, PermissionRefused)  # a rule, not a permission
    assert trusted.publish_target("amq.direct", "k", "anyone").name == "amq.direct"


def test_user_id_is_the_users_own_unless_impersonator(services: Services) -> None:
    with pytest.raises(PreconditionFailed, match="user_id property set to 'mallory'"):
        client(services, "writer").publish_target("amq.direct", "k", "mallory")
    assert client(services, "writer").publish_target("amq.direct", "k", "writer")
    assert client(services, "proxy").publish_target("amq.direct", "k", "mallory")


def test_relogin_drops_what_was_allowed_before(services: Services) -> None:
    writer = client(services, "writer")
    writer.publish_target("amq.direct", "k", None)  # allowed, and remembered
    reader = client(services, "reader").user
    assert reader is not None
    writer.relogin(reader)
    with pytest.raises(PermissionRefused, match=r"exchange 'amq\.direct'"):
        writer.publish_target("amq.direct", "k", None)


def test_binding_needs_write_on_the_destination_and_read_on_the_source(
    services: Services,
) -> None:
    client(services, "writer").declare_queue("q")
    with pytest.raises(PermissionRefused, match="queue 'q'"):
        client(services, "reader").bind("amq.direct", "q", DestinationKind.QUEUE, "k")
    client(services, "writer").bind("amq.direct", "q", DestinationKind.QUEUE, "k")


class Target:
    def __init__(self) -> None:
        self.replies: list[object] = []

    def deliver_reply(self, message: object) -> None:
        self.replies.append(message)


def test_reply_registry_delivers_to_any_reply_target() -> None:
    registry = ReplyRegistry()
    target = Target()
    key = registry.register(target)
    assert key.startswith(REPLY_TO_PREFIX) and registry.exists(key)
    reply = object()
    assert registry.deliver(key, reply) == 1
    assert target.replies == [reply]
    registry.unregister(key)
    assert registry.deliver(key, reply) == 0
