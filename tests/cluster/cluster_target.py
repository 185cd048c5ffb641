"""The client tests' broker as a Pigeon cluster: three JetStream servers and N Pigeon
nodes (``Config.cluster``, as ``pigeon serve --cluster``) in this process.

``tests/conftest.py`` uses it when pytest runs with ``--cluster-nodes N`` (or
``PIGEON_TEST_CLUSTER_NODES=N``): each test gets the AMQP URL (and management URL) of
one node, the next test the next node, so that the client tests run against every node
of the cluster. See docs/cluster.md, "Testing against a cluster".
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pigeon.broker import Broker
from pigeon.cluster.natsserver import LocalCluster
from pigeon.config import Config

#: The marker of a test that fails against a cluster because of a gap docs/cluster.md
#: lists; its argument names the gap (the test is skipped in a cluster run).
GAP_MARKER = "cluster_gap"


@dataclass
class ClusterTarget:
    """A local JetStream cluster (three servers) and ``size`` Pigeon nodes on it."""

    directory: Path
    size: int = 2
    nodes: list[Broker] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)
    _turns: itertools.cycle[int] = field(init=False)

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(self.size))

    def __enter__(self) -> ClusterTarget:
        try:
            nats = self._stack.enter_context(
                LocalCluster(self.directory / "nats", size=3, sync="default")
            )
            for index in range(self.size):
                config = Config(
                    port=0,
                    mqtt_port=0,
                    mqtt_ws_port=0,
                    management_port=0,
                    data_dir=self.directory / f"node-{index + 1}",
                    cluster=",".join(nats.urls),
                    cluster_monitor=",".join(nats.monitor_urls),
                )
                self.nodes.append(self._start(config))
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self, config: Config, attempts: int = 3) -> Broker:
        """A node; started again when JetStream, just elected its leader on a busy
        machine, times out a first request (the bucket's creation)."""
        for attempt in range(attempts):
            try:
                return self._stack.enter_context(Broker.in_thread(config))
            except Exception as error:
                if attempt == attempts - 1 or not type(error).__module__.startswith("nats"):
                    raise
        raise AssertionError("unreachable")

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def next_node(self) -> int:
        """The index of the node the next test talks to (round robin)."""
        return next(self._turns)

    def amqp_url(self, index: int) -> str:
        return self.nodes[index].amqp_url

    def management(self, index: int) -> tuple[str, str]:
        """(management base URL, AMQP host:port) of node ``index``."""
        node = self.nodes[index]
        assert node.management_url is not None
        return node.management_url.rstrip("/"), f"127.0.0.1:{node.amqp_port}"


def skip_gaps(items: list[pytest.Item]) -> None:
    """Skip the tests marked ``cluster_gap("...")`` in a cluster run, naming the gap."""
    for item in items:
        marker = item.get_closest_marker(GAP_MARKER)
        if marker is not None:
            gap = marker.args[0] if marker.args else "see docs/cluster.md"
            item.add_marker(pytest.mark.skip(reason=f"cluster gap: {gap}"))
