"""A real broker on free ports with its management listener, and a small HTTP client.

The broker runs on its own thread and loop (``Broker.in_thread``); the
management server is started on that same loop, as ``broker.py`` does, with a
short sampling interval so rate tests are quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from admin_helpers import SAMPLE_INTERVAL, Api, Running

from pigeon.admin import start_management
from pigeon.broker import Broker
from pigeon.config import Config


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with Broker.in_thread(Config(port=0, data_dir=None, management_port=None)) as broker:
        loop = broker.node.scheduler if broker.node else None
        assert isinstance(loop, asyncio.AbstractEventLoop)
        server = asyncio.run_coroutine_threadsafe(
            start_management(broker, "127.0.0.1", 0, sample_interval=SAMPLE_INTERVAL), loop
        ).result(timeout=10)
        yield Running(broker, server, Api(f"http://127.0.0.1:{server.port}"))
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)


@pytest.fixture
def api(running: Running) -> Api:
    return running.api
