"""The client tests of a few modules, run against a two-node Pigeon cluster in every
suite run: a pytest of its own with ``--cluster-nodes 2`` (tests/cluster/cluster_target.py).
The whole set runs behind the flag: ``pytest --cluster-nodes 2 tests/integration -m rabbitmq``
(docs/cluster.md, "Testing against a cluster")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

#: The modules run against the cluster by default (a few minutes on a busy machine).
DEFAULT_MODULES = ("test_basic.py", "test_confirms_tx.py", "test_queues.py", "test_exchanges.py")


@pytest.mark.timeout(600)
def test_client_tests_pass_against_a_two_node_cluster(nats_binary: Path) -> None:
    # nats_binary: skipped where there is no nats-server; the run finds it the same way.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--cluster-nodes",
        "2",
        *(str(TESTS / "integration" / module) for module in DEFAULT_MODULES),
    ]
    run = subprocess.run(
        command,
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
        # A run against another broker (PIGEON_TEST_AMQP_URL) must not leak into this one.
        env={k: v for k, v in os.environ.items() if k != "PIGEON_TEST_AMQP_URL"},
    )
    lines = run.stdout.splitlines()
    tail = "\n".join(lines[-40:])
    first = "\n".join([line for line in lines if line.startswith("E ")][:40])
    assert run.returncode == 0, f"failed against the cluster:\n{first}\n...\n{tail}"
    assert " passed" in tail, tail
