"""pytest plugin: a real Pigeon broker for the test session, and a fresh vhost per test.

Registered through the ``pytest11`` entry point, so installing Pigeon is enough.

Fixtures:

- ``pigeon_config`` (session): the :class:`~pigeon.config.Config` of the session
  broker; override it in a ``conftest.py`` to change settings.
- ``pigeon_broker`` (session): one broker on its own thread (``Broker.in_thread``),
  on a free loopback port, in memory.
- ``pigeon_vhost`` (function): a new vhost on that broker, deleted after the test,
  so tests never see each other's queues. It has the in-process API
  (``publish``, ``get``, ``queue``, ``wait_for``, ``.sync``...) and ``amqp_url``.
- ``amqp_url`` (function): the URL of that vhost, for any AMQP client.
- ``mqtt_url`` (function): ``mqtt://127.0.0.1:PORT`` of the session broker's MQTT
  listener (its default vhost; a username ``vhost:user`` picks another).
- ``pigeon_async_broker`` (function, needs pytest-asyncio): a broker of its own
  running on the test's event loop (``async with Broker(...)``).

A failing test's report gets a "pigeon broker log" section: the broker's log
lines from while the test ran.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING

import pytest

from pigeon.config import Config

if TYPE_CHECKING:
    from pigeon.broker import Broker
    from pigeon.embedded import VhostView

try:
    import pytest_asyncio
except ImportError:  # the async fixture needs it; the others do not
    HAVE_PYTEST_ASYNCIO = False
else:
    HAVE_PYTEST_ASYNCIO = True

LOG_LINES = 200
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
_log_start = pytest.StashKey[int]()


class RecentLog(logging.Handler):
    """Keeps the broker's latest log lines, numbered, so a test can ask for its own."""

    def __init__(self, capacity: int = LOG_LINES) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        self.lines: deque[tuple[int, str]] = deque(maxlen=capacity)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad log call must not fail a test through this handler
            line = f"{record.levelname} {record.name}: {record.msg!r} (unformattable)"
        self.count += 1
        self.lines.append((self.count, line))

    def since(self, start: int) -> list[str]:
        return [line for number, line in list(self.lines) if number > start]


_recent = RecentLog()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "pigeon_log_level", "level of the broker log shown for failed tests", default="info"
    )


def pytest_configure(config: pytest.Config) -> None:
    logger = logging.getLogger("pigeon")
    level = logging.getLevelName(str(config.getini("pigeon_log_level")).upper())
    _recent.setLevel(level)
    logger.addHandler(_recent)
    if logger.level == logging.NOTSET or logger.level > level:
        config.stash[_saved_level] = logger.level
        logger.setLevel(level)


def pytest_unconfigure(config: pytest.Config) -> None:
    logger = logging.getLogger("pigeon")
    logger.removeHandler(_recent)
    if _saved_level in config.stash:
        logger.setLevel(config.stash[_saved_level])


_saved_level = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_log_start] = _recent.count


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _log_start in item.stash:
        lines = _recent.since(item.stash[_log_start])
        if lines:
            report.sections.append((f"pigeon broker log ({report.when})", "\n".join(lines)))
    return report


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pigeon_config() -> Config:
    """Settings of the session broker: a free loopback port, in memory, no management."""
    return Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=None
    )


@pytest.fixture(scope="session")
def pigeon_broker(pigeon_config: Config) -> Iterator[Broker]:
    """One real broker for the whole session, on its own thread and event loop."""
    from pigeon.broker import Broker

    with Broker.in_thread(pigeon_config) as broker:
        yield broker


@pytest.fixture
def pigeon_vhost(pigeon_broker: Broker, request: pytest.FixtureRequest) -> Iterator[VhostView]:
    """A fresh vhost for this test, deleted afterwards (with its queues and exchanges)."""
    name = f"{request.node.name[:60]}-{uuid.uuid4().hex[:8]}"
    vhost = pigeon_broker.sync.add_vhost(name)
    yield vhost
    pigeon_broker.sync.delete_vhost(name)


@pytest.fixture
def amqp_url(pigeon_vhost: VhostView) -> str:
    """``amqp://guest:guest@127.0.0.1:PORT/<this test's vhost>``."""
    return pigeon_vhost.amqp_url


@pytest.fixture
def mqtt_url(pigeon_broker: Broker) -> str:
    """``mqtt://127.0.0.1:PORT`` of the session broker's MQTT listener."""
    return pigeon_broker.mqtt_url


if HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def pigeon_async_broker(pigeon_config: Config) -> AsyncIterator[Broker]:
        """A broker of its own on the test's event loop, stopped after the test."""
        from pigeon.broker import Broker

        async with Broker(pigeon_config) as broker:
            yield broker
