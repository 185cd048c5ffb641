"""``Client.retain`` and ``Client.retained``: the checks a protocol gets for retained
messages (those of a publish to the topic, and of a subscription's binding)."""

from __future__ import annotations

import pytest
from glue_fakes import ManualClock

from pigeon.auth.authorization import Identity, PermissionRefused, StoreAuthority
from pigeon.auth.users import PermissionSet, TopicPermission, UserStore
from pigeon.core.message import Message, Properties
from pigeon.core.node import Node
from pigeon.errors import AccessRefused, NotFound, PreconditionFailed, ResourceLimit
from pigeon.operations.client import Client
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ


@pytest.fixture
def services() -> Services:
    node = Node(ManualClock(), vocabulary=RABBITMQ)
    node.retained_limit = 4
    node.add_vhost("/")
    users = UserStore()
    users.add_user("device", "pw")
    users.set_permission("/", "device")
    # Topic permissions on the MQTT exchange: write under "home.", read under "home.".
    users.set_topic_permission("/", "device", TopicPermission("amq.topic", "^home\\.", "^home\\."))
    users.add_user("viewer", "pw")
    users.set_permission("/", "viewer", PermissionSet(write="^$", read="^amq\\.topic$"))
    users.add_user("blind", "pw")
    users.set_permission("/", "blind", PermissionSet(read="^$"))
    return Services(node=node, users=users)


def client(services: Services, user: str | None) -> Client:
    identity = None
    if user is not None:
        identity = Identity(user, StoreAuthority(services.users, user), frozenset())
    return Client(services, services.node.vhost("/"), identity)


def msg(topic: str, body: bytes = b"on", exchange: str = "amq.topic", **props: object) -> Message:
    return Message(exchange, topic.replace("/", "."), Properties(**props), body)  # type: ignore[arg-type]


def test_retaining_needs_what_a_publish_to_the_topic_needs(services: Services) -> None:
    device = client(services, "device")
    assert device.retain("home/lamp", msg("home/lamp"))
    with pytest.raises(PermissionRefused, match=r"write access to topic 'garden\.tap'"):
        device.retain("garden/tap", msg("garden/tap"))
    with pytest.raises(PermissionRefused, match=r"exchange 'amq\.topic'"):
        client(services, "viewer").retain("home/lamp", msg("home/lamp", b"off"))
    with pytest.raises(PreconditionFailed, match="user_id property set to 'someone'"):
        device.retain("home/lamp", msg("home/lamp", user_id="someone"))
    with pytest.raises(NotFound, match="no exchange 'mqtt'"):
        device.retain("home/lamp", msg("home/lamp", exchange="mqtt"))
    client(services, None).declare_exchange("inside", "topic", internal=True)
    with pytest.raises(AccessRefused, match="internal exchange 'inside'"):
        client(services, None).retain("home/lamp", msg("home/lamp", exchange="inside"))
    assert [(t, m.body) for t, m in client(services, None).retained(
        "#", exchange="amq.topic", binding_key="#"
    )] == [("home/lamp", b"on")]  # fmt: skip


def test_a_new_subscription_gets_what_its_read_checks_allow(services: Services) -> None:
    trusted = client(services, None)
    for topic in ("home/lamp", "home/door", "garden/tap", "$SYS/uptime"):
        trusted.retain(topic, msg(topic))
    device = client(services, "device")
    got = device.retained("home/+", exchange="amq.topic", binding_key="home.*")
    assert {topic for topic, _ in got} == {"home/lamp", "home/door"}
    with pytest.raises(PermissionRefused, match=r"read access to topic 'garden\.tap'"):
        device.retained("garden/tap", exchange="amq.topic", binding_key="garden.tap")
    with pytest.raises(PermissionRefused, match=r"exchange 'amq\.topic'"):
        client(services, "blind").retained(
            "home/lamp", exchange="amq.topic", binding_key="home.lamp"
        )
    viewer = client(services, "viewer")  # no topic permissions: every key
    assert {t for t, _ in viewer.retained("#", exchange="amq.topic", binding_key="#")} == {
        "home/lamp",
        "home/door",
        "garden/tap",
    }
    assert viewer.retained("$share/g/#", exchange="amq.topic", binding_key="#") == []


def test_the_vhost_limit_refuses_a_new_topic(services: Services) -> None:
    trusted = client(services, None)
    for topic in ("a", "b", "c", "e"):
        trusted.retain(topic, msg(topic))
    with pytest.raises(ResourceLimit, match="retained message limit of 4"):
        trusted.retain("d", msg("d"))
    assert not trusted.retain("a", msg("a", b""))
    assert trusted.retain("d", msg("d"))
