"""``pigeon bench --protocol mqtt`` and ``benchmarks.compare_mqtt`` against a real Mosquitto.

Each test starts nothing but what it measures: a private Mosquitto on a free
loopback port (skipped when Debian's ``mosquitto`` is not installed). Runs are
count-based or a fraction of a second long; the tests check the report's shape
and that messages were counted, never a speed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.mqtt_brokers import MOSQUITTO, MosquittoNode, probe_mqtt

from pigeon.bench import command

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto") or os.access(MOSQUITTO, os.X_OK)),
    reason="Mosquitto is not installed (Debian: apt-get install mosquitto)",
)


@pytest.fixture(scope="module")
def mosquitto() -> Iterator[MosquittoNode]:
    binary = MOSQUITTO if os.access(MOSQUITTO, os.X_OK) else str(shutil.which("mosquitto"))
    with MosquittoNode(binary) as node:
        yield node


def _bench(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    status = command.main(["--protocol", "mqtt", *argv, "--json", "--quiet"])
    return status, json.loads(capsys.readouterr().out)


def _only_run(report: dict[str, object]) -> dict[str, object]:
    (broker,) = report["brokers"]  # type: ignore[misc]
    assert broker["failures"] == []
    (run,) = broker["runs"]
    assert run["errors"] == []
    return dict(run)


def test_qos0_closed_run_counts_every_message(
    mosquitto: MosquittoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report = _bench(
        capsys, mosquitto.url, "--count", "2000", "--broker-pid", str(mosquitto.pid)
    )
    assert status == 0
    assert report["scenario"]["qos"] == 0  # type: ignore[index]
    run = _only_run(report)
    assert run["published_total"] == 2000
    assert run["consumed_total"] == 2000
    assert run["drained"] is True
    assert run["lost_messages"] == 0
    assert run["confirmed_per_s"] is None  # no PUBACKs at QoS 0
    assert run["latency_samples"] == 2000
    assert run["p50_us"] is not None and run["p99_us"] is not None
    assert run["broker_cpu_s"] is not None  # the pid was read


def test_qos1_v5_two_pairs_every_publish_acknowledged(
    mosquitto: MosquittoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--qos", "1", "--mqtt-version", "5", "--publishers", "2", "--consumers", "2"]
    args += ["--queues", "2", "--size", "1024", "--count", "500", "--confirm", "16"]
    status, report = _bench(capsys, mosquitto.url, *args)
    assert status == 0
    run = _only_run(report)
    assert run["published_total"] == 1000
    assert run["confirmed"] == 1000
    assert run["consumed_total"] == 1000
    assert run["expected_total"] == 1000
    assert run["lost_messages"] is None  # only counted at QoS 0


def test_one_topic_two_subscribers_each_get_every_message(
    mosquitto: MosquittoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report = _bench(capsys, mosquitto.url, "--consumers", "2", "--count", "300")
    assert status == 0
    run = _only_run(report)
    assert run["published_total"] == 300
    assert run["consumed_total"] == 600


def test_rate_half_probes_then_runs_at_half(
    mosquitto: MosquittoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--rate", "half", "--duration", "0.5", "--warmup", "0.2", "--drain", "5"]
    status, report = _bench(capsys, mosquitto.url, *args)
    assert status == 0
    assert report["scenario"]["rate"] > 0  # type: ignore[index]
    run = _only_run(report)
    assert run["consumed"] > 0
    assert run["latency_samples"] > 0


def test_idle_connections_report_rss_per_connection(
    mosquitto: MosquittoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--idle", "60", "--connect-batch", "25", "--broker-pid", str(mosquitto.pid)]
    status, report = _bench(capsys, mosquitto.url, *args)
    assert status == 0
    assert report["scenario"]["keepalive"] == 3600  # type: ignore[index]
    run = _only_run(report)
    assert run["idle_connections"] == 60
    assert run["rss_before_mb"] is not None
    assert run["rss_kb_per_connection"] is not None


def test_table_names_the_mqtt_scenario(
    mosquitto: MosquittoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    # An mqtt:// URL is enough: the protocol follows the scheme.
    assert command.main([mosquitto.url, "--count", "100", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MQTT 3.1.1: 1 publisher(s) -> 1 topic(s) -> 1 subscriber(s), 16 B, QoS 0" in out
    assert "consumed (total)" in out


def test_refused_connection_is_a_failed_run(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the run: nothing listens
    status, report = _bench(capsys, f"mqtt://127.0.0.1:{port}", "--count", "10")
    assert status == 2
    (broker,) = report["brokers"]  # type: ignore[misc]
    assert broker["runs"] == []
    assert "ConnectionRefusedError" in broker["failures"][0]


def test_probe_tells_a_listener_from_a_missing_one(mosquitto: MosquittoNode) -> None:
    assert probe_mqtt(mosquitto.port) is None
    with socket.socket() as silent:  # accepts TCP connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        assert "no CONNACK" in str(probe_mqtt(port, timeout=0.3))
    assert "connection refused" in str(probe_mqtt(port, timeout=0.3))


def test_compare_harness_measures_mosquitto_and_reports_pigeon(tmp_path: Path) -> None:
    output = tmp_path / "mqtt.md"
    argv = [sys.executable, "-m", "benchmarks.compare_mqtt", "--rounds", "1"]
    argv += ["--scenarios", "qos0-16B", "--duration", "0.3", "--warmup", "0.1", "--drain", "5"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    done = subprocess.run(
        [*argv, "--output", str(output)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    text = output.read_text()
    assert "| qos0-16B | mosquitto |" in text, done.stderr
    assert "Brokers: mosquitto = mosquitto version" in text
    # Pigeon is either measured or named as missing its MQTT listener: never silent.
    assert "| qos0-16B | pigeon |" in text or "pigeon: MQTT listener missing" in text
