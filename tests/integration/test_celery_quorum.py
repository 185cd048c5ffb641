"""Celery with quorum queues, as its documentation sets it up.

``task_default_queue_type = "quorum"`` declares the task queue with
``x-queue-type: quorum``; Celery then detects it and sets its prefetch per
consumer, since quorum queues refuse global QoS. RabbitMQ 3.10's behaviour too
(run with ``PIGEON_TEST_AMQP_URL``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from helpers import connect
from pika.exceptions import ChannelClosedByBroker

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def app(broker_url: str) -> Iterator[Celery]:
    suffix = uuid.uuid4().hex[:10]
    app = Celery(f"pigeon-quorum-{suffix}", broker=broker_url, set_as_current=False)
    app.conf.update(
        result_backend="rpc://",
        task_default_queue=f"quorum-celery-{suffix}",
        task_default_queue_type="quorum",
        broker_transport_options={"confirm_publish": True},
        control_exchange=f"quorum-control-{suffix}",
        event_exchange=f"quorum-events-{suffix}",
        broker_connection_retry_on_startup=True,
        broker_heartbeat=0,  # see test_celery.py: the worker would not stop in time
        worker_hijack_root_logger=False,
    )

    @app.task(name=f"quorum.add.{suffix}")  # unique: Celery warns of a name used before
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    with contextlib.suppress(AttributeError):  # as test_celery.close: the rpc connection
        app.backend.result_consumer.stop()
    app.close()
    with connect(broker_url) as connection:
        channel = connection.channel()
        channel.queue_delete(f"quorum-celery-{suffix}")
        # What Celery declared beside it: the task queue's exchange, the worker's pidbox.
        for exchange in (
            f"quorum-celery-{suffix}",
            f"quorum-control-{suffix}.pidbox",
            f"quorum-events-{suffix}",
        ):
            channel.exchange_delete(exchange)


def test_a_worker_serves_a_quorum_task_queue(app: Celery, broker_url: str) -> None:
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10.0):
        add = next(task for name, task in app.tasks.items() if name.startswith("quorum.add"))
        assert add.delay(2, 3).get(timeout=10) == 5
    queue = app.conf.task_default_queue
    with connect(broker_url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        with pytest.raises(ChannelClosedByBroker) as classic:
            channel.queue_declare(queue, durable=True)
        assert "inequivalent arg 'x-queue-type'" in str(classic.value.reply_text)
