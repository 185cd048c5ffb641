"""Fixtures for the durability tests: brokers in child processes on a data folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from .broker_process import BrokerProcess

MakeBroker = Callable[..., BrokerProcess]


@pytest.fixture
def make_broker() -> Iterator[MakeBroker]:
    """``make_broker(data_dir, env=None, management=False, args=(), mqtt=False)`` -> a
    :class:`BrokerProcess`, not started.

    Every child is killed at teardown; an ERROR in any child's log fails the test.
    """
    made: list[BrokerProcess] = []

    def make(
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        management: bool = False,
        args: Sequence[str] = (),
        mqtt: bool = False,
    ) -> BrokerProcess:
        broker = BrokerProcess(data_dir, env, management=management, args=args, mqtt=mqtt)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.kill()
    for broker in made:
        broker.check_no_errors()
