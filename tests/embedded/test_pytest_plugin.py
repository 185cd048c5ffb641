"""The pytest plugin, run by pytest's own ``pytester`` in a subprocess, as a user would."""

from __future__ import annotations

import pytest
from pytester_runs import run

pytest_plugins = ["pytester"]

GREEN = """
import pika
import pytest


@pytest.fixture
def channel(amqp_url):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    yield connection.channel()
    connection.close()


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_an_empty_vhost(channel, pigeon_vhost, attempt):
    # The same queue name in both runs: the second must not see the first's message.
    declared = channel.queue_declare("orders")
    assert declared.method.message_count == 0
    channel.exchange_declare("shop", "topic")
    channel.queue_bind("orders", "shop", "order.*")
    channel.basic_publish("shop", "order.created", b"new order")
    info = pigeon_vhost.sync.wait_for(lambda b: b.queue("orders").ready == 1 and b.queue("orders"))
    assert info.messages[0].body == b"new order"


def test_a_message_consumed_and_acked_over_amqp(channel, pigeon_vhost):
    channel.queue_declare("jobs")
    pigeon_vhost.sync.publish("", "jobs", b"job")
    method, _, body = channel.basic_get("jobs")
    assert body == b"job"
    channel.basic_ack(method.delivery_tag)
    pigeon_vhost.sync.wait_for(lambda b: b.queue("jobs").stats.acked == 1)


def test_the_session_broker_is_shared(pigeon_broker, amqp_url):
    assert amqp_url.startswith(pigeon_broker.amqp_url.rsplit("/", 1)[0] + "/")
    assert not amqp_url.endswith("/%2F")


async def test_async_use_of_the_session_broker(pigeon_vhost):
    await pigeon_vhost.declare_queue("events")
    assert await pigeon_vhost.publish("", "events", b"hello") == 1
    message = await pigeon_vhost.get("events")
    await message.ack()
    assert pigeon_vhost.queue("events").total == 0


async def test_a_broker_on_the_test_loop(pigeon_async_broker):
    import aio_pika

    connection = await aio_pika.connect(pigeon_async_broker.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        queue = await channel.declare_queue("replies")
        await channel.default_exchange.publish(aio_pika.Message(b"hi"), routing_key="replies")
        await pigeon_async_broker.wait_for(lambda b: b.queue("replies").ready == 1)
        assert queue.name == "replies"
"""

WRONG_BINDING = """
import logging

import pika


def test_order_reaches_the_queue(amqp_url, pigeon_vhost):
    logging.getLogger("pigeon.test").info("marker line from the failing test")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare("shop", "topic")
    channel.queue_declare("orders")
    channel.queue_bind("orders", "shop", "orders.*")  # wrong: the publisher says "order."
    channel.basic_publish("shop", "order.created", b"new order")
    connection.close()
    pigeon_vhost.sync.wait_for(lambda b: b.queue("orders").ready == 1, timeout=0.5)
"""


def test_a_suite_using_the_fixtures_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_green=GREEN)
    result = run(pytester)
    result.assert_outcomes(passed=6)


def test_a_wrong_binding_fails_and_shows_the_broker_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wrong=WRONG_BINDING)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*TimeoutError: condition not met within 0.5 s; queues now:*",
            "*pigeon broker log (call)*",
            "*INFO*pigeon.test: marker line from the failing test*",
        ]
    )
    assert (
        "orders: ready=0 unacked=0 consumers=0; bindings: 'shop' with 'orders.*'"
        in result.stdout.str()
    )


def test_vhosts_are_deleted_after_each_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cleanup="""
import pytest

seen = {}

@pytest.mark.parametrize("step", [1, 2])
def test_step(pigeon_broker, pigeon_vhost, step):
    seen[step] = pigeon_vhost.name
    if step == 2:
        with pytest.raises(Exception, match="no vhost"):
            pigeon_broker.vhost(seen[1]).queues()
"""
    )
    run(pytester).assert_outcomes(passed=2)


def test_project_fixtures_of_the_same_name_win(pytester: pytest.Pytester) -> None:
    """A conftest ``amqp_url`` (like Pigeon's own test suite has) overrides the plugin's."""
    pytester.makeconftest("""
import pytest

@pytest.fixture
def amqp_url():
    return "amqp://example.invalid/"
""")
    pytester.makepyfile(
        test_override="""
def test_it(amqp_url):
    assert amqp_url == "amqp://example.invalid/"
"""
    )
    run(pytester).assert_outcomes(passed=1)
