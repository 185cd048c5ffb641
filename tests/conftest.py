"""Shared fixtures: a real broker on a free loopback port.

Set ``PIGEON_TEST_AMQP_URL`` (for example ``amqp://guest:guest@127.0.0.1:5672/``)
to run the client-level tests against another broker, such as RabbitMQ, to
check that the tests themselves describe RabbitMQ's behaviour.

``--cluster-nodes N`` (or ``PIGEON_TEST_CLUSTER_NODES=N``) runs them against a local
Pigeon cluster of N nodes instead, each test on the next node
(``tests/cluster/cluster_target.py``; docs/cluster.md, "Testing against a cluster").
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cluster.cluster_target import ClusterTarget

EXTERNAL_URL = os.environ.get("PIGEON_TEST_AMQP_URL")


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_errors = _ErrorCollector()
logging.getLogger("pigeon").addHandler(_errors)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption(
        "--cluster-cycles",
        type=int,
        default=0,
        metavar="N",
        help="the cluster failover test's long mode: N cycles of kills and partitions",
    )
    parser.addoption(
        "--cluster-nodes",
        type=int,
        default=int(os.environ.get("PIGEON_TEST_CLUSTER_NODES") or 0),
        help="run the client tests against a local cluster of N Pigeon nodes",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--cluster-nodes"):
        from cluster.cluster_target import skip_gaps

        skip_gaps(items)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_broker_errors() -> Iterator[None]:
    """An ERROR logged by the broker is a bug: fail the test that caused it."""
    before = len(_errors.records)
    yield
    new = _errors.records[before:]
    if new:
        lines = "\n".join(f"{r.name}: {r.getMessage()}" for r in new)
        pytest.fail(f"the broker logged errors:\n{lines}")


@pytest.fixture(scope="session")
def pigeon_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterTarget | None]:
    """The local cluster the client tests run against (``--cluster-nodes``), or None."""
    size = request.config.getoption("--cluster-nodes")
    if not size:
        yield None
        return
    from cluster.cluster_target import ClusterTarget

    with ClusterTarget(tmp_path_factory.mktemp("cluster"), size) as cluster:
        yield cluster


@pytest.fixture
def cluster_node(pigeon_cluster: ClusterTarget | None) -> int | None:
    """The index of the cluster node this test talks to (the next one), or None."""
    return None if pigeon_cluster is None else pigeon_cluster.next_node()


@pytest.fixture(scope="session")
def broker_url(pigeon_cluster: ClusterTarget | None) -> Iterator[str]:
    """URL of one broker for the whole session (Pigeon in a thread, or external)."""
    if EXTERNAL_URL:
        yield EXTERNAL_URL
        return
    if pigeon_cluster is not None:
        yield pigeon_cluster.amqp_url(0)
        return
    from pigeon.broker import Broker
    from pigeon.config import Config

    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=None)
    ) as broker:
        yield broker.amqp_url


@pytest.fixture
def amqp_url(
    broker_url: str, pigeon_cluster: ClusterTarget | None, cluster_node: int | None
) -> str:
    if pigeon_cluster is not None and cluster_node is not None:
        return pigeon_cluster.amqp_url(cluster_node)
    return broker_url


@pytest.fixture
def uid() -> str:
    """A short unique suffix for queue and exchange names, so tests never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts a small tmpfs (``tmpfs("2m")``) for disk-full tests, unmounted afterwards.

    Needs root (CI runs as root); the test is skipped where mounting is not allowed.
    """
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mount_point = tmp_path / f"tmpfs-{len(mounted)}"
        mount_point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(
                f"cannot mount a {size} tmpfs (needs root): {result.stderr.decode().strip()}"
            )
        mounted.append(mount_point)
        return mount_point

    yield mount
    for mount_point in mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
