"""Policies, operator policies and limits, set over the management API, seen by pika.

Each test runs in a vhost of its own (policies and limits are vhost-wide), made
and deleted through the management API, so the same tests run against RabbitMQ
(``PIGEON_TEST_AMQP_URL``; its management API on port 15672 of the same host).
"""

from __future__ import annotations

from typing import Any

import pika
import pytest
from helpers import connect, get_one, wait_until
from management import Target
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

pytestmark = pytest.mark.rabbitmq


def _count(channel: Any, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def test_ttl_and_dead_lettering_set_by_a_policy(target: Target) -> None:
    target.put(
        f"/policies/{target.v}/expire-work",
        {
            "pattern": "^work$",
            "apply-to": "queues",
            "definition": {"message-ttl": 50, "dead-letter-exchange": "dead"},
        },
    )
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.exchange_declare("dead", "fanout")
        channel.queue_declare("graveyard")
        channel.queue_bind("graveyard", "dead")
        channel.queue_declare("work")
        channel.basic_publish("", "work", b"late")
        _, properties, body = get_one(channel, "graveyard")
        assert body == b"late"
        assert properties.headers["x-death"][0]["reason"] == "expired"
    shown = target.queue("work", "expire-work")
    assert shown["operator_policy"] is None
    assert shown["effective_policy_definition"] == {
        "dead-letter-exchange": "dead",
        "message-ttl": 50,
    }
    assert shown["arguments"] == {}


def test_queue_arguments_beat_a_policy_except_where_the_smaller_limit_wins(target: Target) -> None:
    target.put(
        f"/policies/{target.v}/everything",
        {
            "pattern": ".*",
            "apply-to": "queues",
            "definition": {"message-ttl": 50, "dead-letter-exchange": "from-policy"},
        },
    )
    with connect(target.url()) as connection:
        channel = connection.channel()
        for exchange, queue in (("from-policy", "policy-dead"), ("from-arg", "arg-dead")):
            channel.exchange_declare(exchange, "fanout")
            channel.queue_declare(queue)
            channel.queue_bind(queue, exchange)
        # The argument's TTL is longer (the policy's 50 ms wins), its DLX beats the policy's.
        channel.queue_declare(
            "mixed", arguments={"x-message-ttl": 60000, "x-dead-letter-exchange": "from-arg"}
        )
        channel.basic_publish("", "mixed", b"m")
        assert get_one(channel, "arg-dead")[2] == b"m"
        assert _count(channel, "policy-dead") == 0


def test_an_operator_policy_caps_a_policy(target: Target) -> None:
    target.put(
        f"/policies/{target.v}/generous",
        {"pattern": "^capped", "definition": {"max-length": 10}, "apply-to": "queues"},
    )
    target.put(
        f"/operator-policies/{target.v}/cap",
        {"pattern": "^capped", "definition": {"max-length": 2}, "apply-to": "queues"},
    )
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.queue_declare("capped")
        for number in range(5):
            channel.basic_publish("", "capped", str(number).encode())
        wait_until(lambda: _count(channel, "capped") == 2)
        assert get_one(channel, "capped")[2] == b"3"  # drop-head kept the newest
    shown = target.queue("capped", "generous")
    assert shown["operator_policy"] == "cap"
    assert shown["effective_policy_definition"] == {"max-length": 2}


def test_set_change_and_clear_apply_to_an_existing_queue(target: Target) -> None:
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.queue_declare("backlog")
        for number in range(5):
            channel.basic_publish("", "backlog", str(number).encode())
        wait_until(lambda: _count(channel, "backlog") == 5)
        # A length limit applies to the backlog at once.
        target.put(
            f"/policies/{target.v}/trim", {"pattern": "^backlog$", "definition": {"max-length": 2}}
        )
        wait_until(lambda: _count(channel, "backlog") == 2)
        target.put(
            f"/policies/{target.v}/trim", {"pattern": "^backlog$", "definition": {"max-length": 3}}
        )
        for number in range(5, 8):
            channel.basic_publish("", "backlog", str(number).encode())
        wait_until(lambda: _count(channel, "backlog") == 3)
        status, _ = target.call("DELETE", f"/policies/{target.v}/trim")
        assert status == 204
        for number in range(8, 10):
            channel.basic_publish("", "backlog", str(number).encode())
        wait_until(lambda: _count(channel, "backlog") == 5)
    assert target.queue("backlog", None)["effective_policy_definition"] == {}


def test_the_highest_priority_policy_applies_alone(target: Target) -> None:
    target.put(
        f"/policies/{target.v}/low",
        {"pattern": "^pick", "priority": 1, "definition": {"max-length": 1}},
    )
    target.put(
        f"/policies/{target.v}/high",
        {"pattern": "^pick", "priority": 5, "definition": {"message-ttl": 600000}},
    )
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.queue_declare("pick")
        for number in range(3):
            channel.basic_publish("", "pick", str(number).encode())
        wait_until(lambda: _count(channel, "pick") == 3)  # "low" (max-length 1) lost
    shown = target.queue("pick", "high")
    assert shown["effective_policy_definition"] == {"message-ttl": 600000}
    status, listed = target.call("GET", f"/policies/{target.v}")
    assert status == 200 and [p["name"] for p in listed] == ["low", "high"]


def test_alternate_exchange_set_by_a_policy(target: Target) -> None:
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.exchange_declare("orders", "direct")
        channel.exchange_declare("unrouted", "fanout")
        channel.queue_declare("lost-orders")
        channel.queue_bind("lost-orders", "unrouted")
        target.put(
            f"/policies/{target.v}/ae",
            {
                "pattern": "^orders$",
                "apply-to": "exchanges",
                "definition": {"alternate-exchange": "unrouted"},
            },
        )
        channel.basic_publish("orders", "nobody", b"stray")
        assert get_one(channel, "lost-orders")[2] == b"stray"
    status, shown = target.call("GET", f"/exchanges/{target.v}/orders")
    assert status == 200 and shown["policy"] == "ae"


def test_expires_set_by_a_policy_deletes_an_unused_queue(target: Target) -> None:
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.queue_declare("idle")
        target.put(
            f"/policies/{target.v}/expire", {"pattern": "^idle$", "definition": {"expires": 100}}
        )
        wait_until(lambda: target.call("GET", f"/queues/{target.v}/idle")[0] == 404)


def test_vhost_queue_limit_refuses_the_next_queue(target: Target) -> None:
    status = target.put(f"/vhost-limits/{target.v}/max-queues", {"value": 1})
    assert status == 204
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.queue_declare("first")
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.queue_declare("second")
        assert refused.value.reply_code == 406
        assert refused.value.reply_text == (
            f"PRECONDITION_FAILED - cannot declare queue 'second': queue limit in vhost "
            f"'{target.vhost}' (1) is reached"
        )
    status, limits = target.call("GET", f"/vhost-limits/{target.v}")
    assert status == 200 and limits == [{"vhost": target.vhost, "value": {"max-queues": 1}}]


def test_vhost_connection_limit(target: Target) -> None:
    target.put(f"/vhost-limits/{target.v}/max-connections", {"value": 1})
    with connect(target.url()):
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            pika.BlockingConnection(pika.URLParameters(target.url()))
        assert (
            f"NOT_ALLOWED - access to vhost '{target.vhost}' refused for user 'guest': "
            "connection limit (1) is reached"
        ) in str(refused.value)
    target.call("DELETE", f"/vhost-limits/{target.v}/max-connections")
    with connect(target.url()), connect(target.url()):
        pass


def test_user_channel_and_connection_limits(target: Target) -> None:
    user = f"{target.vhost}-user"
    target.put(f"/users/{user}", {"password": "pw", "tags": ""})
    target.put(f"/permissions/{target.v}/{user}", {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        target.put(f"/user-limits/{user}/max-channels", {"value": 1})
        target.put(f"/user-limits/{user}/max-connections", {"value": 1})
        status, limits = target.call("GET", f"/user-limits/{user}")
        assert status == 200
        assert limits == [{"user": user, "value": {"max-channels": 1, "max-connections": 1}}]
        with connect(target.url(user, "pw")) as connection:
            connection.channel()
            with pytest.raises(ConnectionClosedByBroker) as refused:
                connection.channel().queue_declare("", exclusive=True)
            assert refused.value.reply_code == 530
            assert refused.value.reply_text == (
                f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the "
                "maximum allowed user limit of (1)"
            )
        with connect(target.url(user, "pw")):
            with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as denied:
                pika.BlockingConnection(pika.URLParameters(target.url(user, "pw")))
            assert (
                f"connection refused for user '{user}': user connection limit (1) is reached"
            ) in str(denied.value)
    finally:
        target.call("DELETE", f"/users/{user}")


@pytest.mark.cluster_gap("length limits (x-max-length) are refused for durable queues")
def test_quorum_queues_skip_policies_they_cannot_take_and_prefer_a_policy_overflow(
    target: Target,
) -> None:
    # RabbitMQ 3.10: a policy with a classic-only key (ha-mode) does not apply to a quorum
    # queue at all, so the next one does; its overflow beats the queue's argument.
    target.put(
        f"/policies/{target.v}/mirrored",
        {"pattern": "-q$", "priority": 5, "definition": {"ha-mode": "all", "max-length": 1}},
    )
    target.put(
        f"/policies/{target.v}/plain",
        {"pattern": "-q$", "definition": {"max-length": 2, "overflow": "drop-head"}},
    )
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(
            "quorum-q",
            durable=True,
            arguments={"x-queue-type": "quorum", "x-overflow": "reject-publish"},
        )
        channel.queue_declare("classic-q", durable=True)
        for number in range(5):
            for queue in ("quorum-q", "classic-q"):  # every publish confirmed: drop-head
                channel.basic_publish("", queue, str(number).encode())
        wait_until(lambda: _count(channel, "quorum-q") == 2)
        wait_until(lambda: _count(channel, "classic-q") == 1)


def test_a_delivery_limit_policy_on_a_quorum_queue(target: Target) -> None:
    # The smaller of the argument (5) and the policy (1) wins; it takes the queue that
    # already exists, and dead-letters the poison message with reason delivery_limit.
    with connect(target.url()) as connection:
        channel = connection.channel()
        channel.exchange_declare("poison", "fanout")
        channel.queue_declare("poisoned")
        channel.queue_bind("poisoned", "poison")
        channel.queue_declare(
            "jobs", durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 5}
        )
        target.put(
            f"/policies/{target.v}/limit",
            {
                "pattern": "^jobs$",
                "apply-to": "queues",
                "definition": {"delivery-limit": 1, "dead-letter-exchange": "poison"},
            },
        )
        channel.basic_publish("", "jobs", b"bad")
        for _ in range(2):
            method, _, _ = get_one(channel, "jobs", auto_ack=False)
            channel.basic_nack(method.delivery_tag, requeue=True)
        _, properties, body = get_one(channel, "poisoned")
        assert body == b"bad"
        assert properties.headers["x-first-death-reason"] == "delivery_limit"
        assert _count(channel, "jobs") == 0
