"""Node's amqplib against the broker (scripts in ``tests/node``, installed by ``npm ci``).

RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check). Skipped when node
or the installed packages are missing, unless ``PIGEON_REQUIRE_NODE`` is set (CI sets it),
which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.rabbitmq

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def node_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tests/node/<name>`` with node; its output and exit status."""
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else "amqplib is not installed: run `npm ci` in tests/node"
        if not (NODE_DIR / "node_modules" / "amqplib").is_dir()
        else None
    )
    if missing is not None:
        if os.environ.get("PIGEON_REQUIRE_NODE"):
            pytest.fail(f"{missing} (PIGEON_REQUIRE_NODE is set)")
        pytest.skip(missing)
    assert node is not None
    return subprocess.run(
        [node, str(NODE_DIR / name), *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )


def test_close_right_after_a_burst_gets_close_ok(amqp_url: str, uid: str) -> None:
    """amqplib sends connection.close ahead of a full channel's buffered publishes: the
    broker answers close-ok and reads on, and the close callback fires (no ECONNRESET)."""
    for attempt in range(3):  # the race that failed is a matter of timing: try it a few times
        result = node_script("close_after_burst.js", amqp_url, f"edge-burst-{uid}-{attempt}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("closed after "), result.stdout
