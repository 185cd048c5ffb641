"""A real broker on free ports with its management listener, and a small HTTP client.

The broker runs on its own thread and loop (``Broker.in_thread``); the
management server is started on that same loop, as ``broker.py`` does, with a
short sampling interval so rate tests are quick.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from admin_helpers import Api, Running, serving

from pigeon.config import Config


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with serving(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=None)
    ) as running:
        yield running


@pytest.fixture
def api(running: Running) -> Api:
    return running.api
