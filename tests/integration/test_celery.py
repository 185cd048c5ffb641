"""Celery end to end: an app on the broker, a real worker in a thread, results over ``rpc://``.

RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check). One worker serves
the whole module. Its names (task queue, control exchange, event exchange) carry a unique
suffix so that other Celery users of the same broker never answer our pings.

What this exercises in the broker: direct routing of tasks, the worker's basic.qos (raised
and lowered for ETA tasks, with kombu's choice of the ``global`` flag), the fanout
``<control>.pidbox`` exchange and reply queues with ``x-expires`` for remote control, and
the rpc backend's auto-delete reply queue.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping for the ping check)
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.worker import WorkController

pytestmark = pytest.mark.rabbitmq

RESULT_TIMEOUT = 10.0


class Tasks:
    """The module's app and its tasks, looked up by name."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return self.app.tasks[f"t.{name}"]


def make_app(broker_url: str, suffix: str) -> Celery:
    app = Celery(f"pigeon-test-{suffix}", broker=broker_url, set_as_current=False)
    app.conf.update(
        result_backend="rpc://",
        task_default_queue=f"celery-{suffix}",
        control_exchange=f"control-{suffix}",
        event_exchange=f"events-{suffix}",
        broker_connection_retry_on_startup=True,
        # No AMQP heartbeats: their 60 s timer would set the worker loop's poll timeout, and
        # the test worker only notices its stop flag between polls (shutdown would hang).
        broker_heartbeat=0,
        worker_hijack_root_logger=False,
        result_expires=60,
    )

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.clock")
    def clock() -> float:
        return time.time()

    @app.task(name="t.boom")
    def boom(text: str) -> None:
        raise ValueError(text)

    return app


@pytest.fixture(scope="module")
def worker_app(broker_url: str) -> Iterator[tuple[Celery, WorkController]]:
    suffix = uuid.uuid4().hex[:10]
    app = make_app(broker_url, suffix)
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=True,
        ping_task_timeout=RESULT_TIMEOUT,
        shutdown_timeout=10.0,
        hostname=f"worker-{suffix}@localhost",
    ) as worker:
        yield app, worker
    close(app)
    app.close()


def close(app: Celery) -> None:
    """Close the rpc backend's result connection, which ``app.close()`` leaves open (its
    socket would be reported unclosed whenever the collector gets to it)."""
    with contextlib.suppress(AttributeError):  # never started: nothing to close
        app.backend.result_consumer.stop()


@pytest.fixture
def tasks(worker_app: tuple[Celery, WorkController]) -> Tasks:
    return Tasks(worker_app[0])


def test_task_runs_and_result_comes_back(tasks: Tasks) -> None:
    assert tasks.add.delay(2, 3).get(timeout=RESULT_TIMEOUT) == 5


def test_many_tasks_each_get_their_own_result(tasks: Tasks) -> None:
    results = [tasks.add.delay(i, i) for i in range(10)]
    assert [r.get(timeout=RESULT_TIMEOUT) for r in results] == [2 * i for i in range(10)]


def test_countdown_task_runs_at_its_time(tasks: Tasks) -> None:
    sent = time.time()
    result = tasks.clock.apply_async(countdown=1)
    ran_at = result.get(timeout=RESULT_TIMEOUT)
    assert ran_at >= sent + 0.95, f"ran {ran_at - sent:.3f} s after sending, before its countdown"


def test_eta_task_runs_at_its_time(tasks: Tasks) -> None:
    eta = datetime.now(UTC) + timedelta(seconds=1)
    result = tasks.clock.apply_async(eta=eta)
    ran_at = result.get(timeout=RESULT_TIMEOUT)
    assert ran_at >= eta.timestamp() - 0.05, "ran before its eta"


def test_task_after_eta_task_is_not_held_back(tasks: Tasks) -> None:
    # The ETA task waits in the worker (unacked, with prefetch raised for it); a plain
    # task sent after it must still run at once.
    later = tasks.clock.apply_async(countdown=2)
    sent = time.time()
    assert tasks.clock.delay().get(timeout=RESULT_TIMEOUT) < sent + 1.5
    assert later.get(timeout=RESULT_TIMEOUT) >= sent + 1.9


def test_exception_propagates_through_rpc_backend(tasks: Tasks) -> None:
    result = tasks.boom.delay("kaboom")
    with pytest.raises(ValueError, match="kaboom"):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"


def test_control_ping_is_answered(worker_app: tuple[Celery, WorkController]) -> None:
    app, worker = worker_app
    replies = app.control.ping(timeout=RESULT_TIMEOUT, limit=1)
    assert replies == [{worker.hostname: {"ok": "pong"}}]


def test_inspect_ping_and_active_queues(worker_app: tuple[Celery, WorkController]) -> None:
    app, worker = worker_app
    inspect = app.control.inspect(timeout=RESULT_TIMEOUT, limit=1)
    assert inspect.ping() == {worker.hostname: {"ok": "pong"}}
    queues = inspect.active_queues()
    assert queues is not None
    assert [q["name"] for q in queues[worker.hostname]] == [app.conf.task_default_queue]
