"""The local nats-server: version check, generated configuration, a 3-server cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pigeon.cluster.natsserver import (
    LocalCluster,
    NatsServerError,
    ServerPorts,
    binary_version,
    find_binary,
    monitor,
    parse_version,
    server_config,
)


def _fake_server(tmp_path: Path, version: str) -> Path:
    # A stand-in for a binary (prints a version and exits), not a broker.
    script = tmp_path / "nats-server"
    script.write_text(f"#!/bin/sh\necho 'nats-server: v{version}'\n")
    script.chmod(0o755)
    return script


def test_older_than_2_11_is_refused_naming_the_jepsen_fixes(tmp_path: Path) -> None:
    fake = _fake_server(tmp_path, "2.10.22")
    with pytest.raises(NatsServerError) as refused:
        binary_version(fake)
    assert "2.10.22" in refused.value.text
    assert "2.11 or newer" in refused.value.text
    assert "Jepsen" in refused.value.text


def test_a_cluster_refuses_to_start_an_old_server(tmp_path: Path) -> None:
    fake = _fake_server(tmp_path, "2.9.0")
    with pytest.raises(NatsServerError, match=r"2\.11 or newer"):
        LocalCluster(tmp_path / "c", size=1, binary=fake).start()


def test_2_11_and_newer_are_accepted(tmp_path: Path) -> None:
    assert binary_version(_fake_server(tmp_path, "2.11.0")) == (2, 11, 0)
    assert parse_version("nats-server: v2.15.1") == (2, 15, 1)


def test_an_explicit_path_that_is_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(NatsServerError, match="no such file"):
        find_binary(tmp_path / "nope")


def test_the_wheel_binary_reports_its_version(nats_binary: Path) -> None:
    done = subprocess.run([str(nats_binary), "--version"], capture_output=True, text=True)
    assert binary_version(nats_binary) == parse_version(done.stdout)


def test_config_always_sync_with_routes(tmp_path: Path) -> None:
    text = server_config("n1", ServerPorts(4222, 6222, 8222), [6222, 6223], tmp_path / "s")
    assert "listen: 127.0.0.1:4222" in text
    assert "http: 127.0.0.1:8222" in text
    assert "sync_interval: always" in text
    assert "routes: [nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223]" in text
    assert f'store_dir: "{tmp_path / "s"}"' in text


def test_config_fast_mode_leaves_the_nats_default(tmp_path: Path) -> None:
    text = server_config("n1", ServerPorts(1, 2, 3), [], tmp_path, sync="default")
    assert "sync_interval" not in text
    assert "cluster {" not in text
    with pytest.raises(NatsServerError, match="sync must be"):
        server_config("n1", ServerPorts(1, 2, 3), [], tmp_path, sync="sometimes")


def test_three_servers_elect_a_meta_leader_and_stop(nats_cluster: LocalCluster) -> None:
    assert len(nats_cluster.urls) == 3
    assert all(url.startswith("nats://127.0.0.1:") for url in nats_cluster.urls)
    leaders = set()
    for url in nats_cluster.monitor_urls:
        jsz = monitor(url, "jsz")
        assert jsz is not None
        assert jsz["meta_cluster"]["cluster_size"] == 3
        leaders.add(jsz["meta_cluster"]["leader"])
        varz = monitor(url, "varz")
        assert varz is not None and varz["jetstream"]["config"]["sync_always"] is True
    assert len(leaders) == 1


def test_stop_ends_every_server(nats_binary: Path, tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, size=3, binary=nats_binary)
    cluster.start()
    processes = list(cluster.processes)
    cluster.stop()
    assert all(process.returncode is not None for process in processes)
    assert all(monitor(url, "varz", timeout=0.5) is None for url in cluster.monitor_urls)
