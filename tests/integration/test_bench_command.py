"""``pigeon bench`` against real Pigeon brokers (embedded, each on its own thread).

Every run is count-based so it ends in well under three seconds, and exact:
a closed run must publish, confirm and consume the same number of messages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pigeon.bench import command
from pigeon.bench.monitor import Monitor
from pigeon.bench.process import find_listener_pid
from pigeon.bench.runner import run_sync
from pigeon.bench.scenario import Scenario
from pigeon.broker import Broker
from pigeon.config import Config


def _config() -> Config:
    return Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=None
    )


@pytest.fixture(scope="module")
def url_a() -> Iterator[str]:
    with Broker.in_thread(_config()) as broker:
        yield broker.amqp_url


@pytest.fixture(scope="module")
def url_b() -> Iterator[str]:
    with Broker.in_thread(_config()) as broker:
        yield broker.amqp_url


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def closed(url: str, **fields: object) -> Scenario:
    return dataclasses.replace(Scenario(url=url, broker_pid=os.getpid(), drain=5), **fields)


def test_pid_finder_finds_the_process_listening_on_the_brokers_port(url_a: str) -> None:
    assert find_listener_pid(port_of(url_a)) == os.getpid()


def test_closed_run_with_confirms_counts_exactly(url_a: str) -> None:
    result = run_sync(closed(url_a, publishers=2, count=3000, confirm=100), use_uvloop=False)

    assert result.errors == []
    assert result.drained
    assert result.published_total == result.confirmed == result.consumed_total == 6000
    assert result.published == result.consumed == 6000
    assert result.latency is not None and result.latency.count == 6000
    assert result.broker_cpu_s is not None and result.broker_rss_mb is not None
    assert result.broker_peak_rss_mb is not None and result.broker_peak_rss_mb > 0


def test_fanout_delivers_each_message_to_every_queue(url_a: str) -> None:
    result = run_sync(closed(url_a, fanout=4, consumers=4, queues=4, count=2000))

    assert result.errors == []
    assert result.published_total == 2000
    assert result.consumed_total == 4 * 2000 == result.expected_total
    assert result.drained


def test_persistent_auto_ack_run_counts_exactly(url_a: str) -> None:
    scenario = closed(url_a, count=2000, size=1024, persistent=True, confirm=64, auto_ack=True)

    result = run_sync(scenario)

    assert result.errors == []
    assert result.published_total == result.confirmed == result.consumed_total == 2000
    assert result.publish_mb_s > 0


def test_backlog_fills_and_drains_every_message(url_a: str) -> None:
    ticks: list[str] = []
    monitor = Monitor(os.getpid(), lambda tick: ticks.append(tick.phase))

    result = run_sync(closed(url_a, backlog=5000, size=256, persistent=True), monitor)

    assert result.errors == []
    assert result.published_total == result.confirmed == result.consumed_total == 5000
    assert result.drained
    assert result.fill_rate and result.drain_rate
    assert result.rss_full_mb is not None and result.broker_peak_rss_mb is not None
    assert result.latency is None  # waiting in a backlog is not latency
    assert "rest" in ticks  # the 1 s rest always spans a tick


def test_transient_backlog_pages_out_and_drains(tmp_path: Path) -> None:
    """``pigeon bench --backlog N --size 1024`` (transient) on a broker that pages."""
    config = dataclasses.replace(_config(), data_dir=tmp_path / "data", paging_memory=1_000_000.0)
    with Broker.in_thread(config) as broker:
        result = run_sync(closed(broker.amqp_url, backlog=8000, size=1024))
    assert result.errors == []
    assert result.published_total == result.confirmed == result.consumed_total == 8000
    assert result.drained


def test_against_runs_both_brokers_alternately_with_ratios_in_json(
    url_a: str, url_b: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [url_a, "--against", url_b, "--rounds", "2", "--count", "1000", "--confirm", "50",
            "--json", "--quiet"]  # fmt: skip

    status = command.main(argv)

    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["rounds"] == 2
    a, b = out["brokers"]
    assert (a["label"], b["label"]) == ("A", "B")
    assert a["pid"] == b["pid"] == os.getpid()  # both brokers live in this process
    for broker in (a, b):
        assert [run["consumed_total"] for run in broker["runs"]] == [1000, 1000]
        assert broker["median"]["published_per_s"] > 0
    assert set(out["ratios"]) == set(a["median"])
    assert out["ratios"]["published_per_s"] == pytest.approx(
        a["median"]["published_per_s"] / b["median"]["published_per_s"], rel=1e-2
    )


def test_table_output_with_progress_on_stderr(
    url_a: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = command.main([url_a, "--count", "1300", "--rate", "1000", "--prefetch", "10"])

    captured = capsys.readouterr()
    assert status == 0
    assert "latency p99.9 µs" in captured.out
    assert "consumed (total)" in captured.out
    # 1.3 s at 1,000 msg/s spans a tick; stderr is no terminal, so whole lines, no \r.
    progress = captured.err.splitlines()
    assert progress and "\r" not in captured.err
    assert all(" measure " in line and "published" in line for line in progress)


def test_unreachable_broker_exits_2_with_n_a(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"amqp://guest:guest@127.0.0.1:{sock.getsockname()[1]}/"
        status = command.main([url, "--count", "10", "--quiet"])

    out = capsys.readouterr().out
    assert status == 2
    assert "n/a (no readable process listening" in out
    assert "A failed: round 1: ConnectionRefusedError" in out


def test_help_of_the_installed_command() -> None:
    done = subprocess.run([sys.executable, "-m", "pigeon", "bench", "--help"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip

    assert done.returncode == 0
    for option in ("--against", "--backlog", "--confirm", "--auto-ack", "--rounds", "--json"):
        assert option in done.stdout


def test_json_run_in_a_subprocess(url_a: str) -> None:
    argv = [sys.executable, "-m", "pigeon", "bench", url_a, "--count", "2000",
            "--confirm", "100", "--json"]  # fmt: skip

    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    (broker,) = out["brokers"]
    (run,) = broker["runs"]
    assert run["published_total"] == run["confirmed"] == run["consumed_total"] == 2000
    assert broker["pid"] == os.getpid()  # found through /proc: the broker is this process
    assert run["broker_cpu_s"] is not None
    assert out["ratios"] is None
