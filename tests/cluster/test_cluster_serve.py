"""``pigeon serve --cluster``: the node connects, checks the servers, and shows the
cluster (NATS URLs, JetStream servers, durability) in ``/api/overview``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pigeon.broker import Broker
from pigeon.cluster.link import ClusterError
from pigeon.cluster.natsserver import LocalCluster, free_ports, monitor
from pigeon.config import Config, load


def _overview(broker: Broker) -> Any:
    assert broker.management_url is not None
    request = urllib.request.Request(f"{broker.management_url}api/overview")
    token = base64.b64encode(b"guest:guest").decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _config(cluster: LocalCluster, *, monitor_urls: bool = True) -> Config:
    return Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=None,
        management_port=0,
        cluster=",".join(cluster.urls),
        cluster_monitor=",".join(cluster.monitor_urls) if monitor_urls else None,
    )


def test_overview_shows_the_cluster_and_its_durability(nats_cluster: LocalCluster) -> None:
    with Broker.in_thread(_config(nats_cluster)) as broker:
        cluster = _overview(broker)["cluster"]
    assert cluster["nats_urls"] == nats_cluster.urls
    assert cluster["durability"] == "always-sync"
    assert sorted(cluster["jetstream_servers"]) == ["n1", "n2", "n3"]
    assert cluster["connected"] is True


def test_durability_unknown_without_monitoring_urls(nats_cluster: LocalCluster) -> None:
    with Broker.in_thread(_config(nats_cluster, monitor_urls=False)) as broker:
        assert _overview(broker)["cluster"]["durability"] == "unknown"


def test_fast_mode_is_reported(nats_binary: Path, tmp_path: Path) -> None:
    with (
        LocalCluster(tmp_path, size=1, binary=nats_binary, sync="default") as fast,
        Broker.in_thread(_config(fast)) as broker,
    ):
        assert _overview(broker)["cluster"]["durability"] == "fast"


def test_single_node_overview_has_no_cluster() -> None:
    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=0)
    ) as broker:
        assert "cluster" not in _overview(broker)


def test_unreachable_servers_are_named() -> None:
    (port,) = free_ports(1)
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=None,
        management_port=None,
        cluster=f"nats://127.0.0.1:{port}",
    )
    with pytest.raises(ClusterError, match="cannot reach the NATS servers"):
        Broker.in_thread(config).__enter__()


def test_a_server_without_jetstream_is_refused(nats_binary: Path) -> None:
    port, http = free_ports(2)
    server = subprocess.Popen(
        [str(nats_binary), "-a", "127.0.0.1", "-p", str(port), "-m", str(http)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        LocalCluster.wait_for(f"http://127.0.0.1:{http}")
        config = Config(
            mqtt_port=0,
            mqtt_ws_port=0,
            port=0,
            data_dir=None,
            management_port=None,
            cluster=f"nats://127.0.0.1:{port}",
        )
        with pytest.raises(ClusterError, match="JetStream is not enabled"):
            Broker.in_thread(config).__enter__()
    finally:
        server.terminate()
        server.wait(10)


def test_serve_refuses_a_bad_cluster_url() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pigeon",
            "serve",
            "--port",
            "0",
            "--no-management",
            "--no-mqtt",
            "--data-dir",
            "",
            "--cluster",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "not a nats://HOST:PORT URL" in done.stderr


def test_monitor_reads_varz(nats_cluster: LocalCluster) -> None:
    varz = monitor(nats_cluster.monitor_urls[0], "varz")
    assert varz is not None and varz["version"]


def test_cluster_from_file_environment_and_flag(tmp_path: Path) -> None:
    settings = tmp_path / "pigeon.toml"
    settings.write_text('cluster = "nats://127.0.0.1:4222"\n')
    assert load(settings, environ={}).cluster == "nats://127.0.0.1:4222"
    environ = {"PIGEON_CLUSTER": "nats://127.0.0.1:4223", "PIGEON_CLUSTER_MONITOR": ""}
    from_env = load(settings, environ=environ)
    assert from_env.cluster == "nats://127.0.0.1:4223"
    assert from_env.cluster_monitor is None
    flagged = load(settings, environ=environ, overrides={"cluster": "nats://127.0.0.1:4224"})
    assert flagged.cluster == "nats://127.0.0.1:4224"
    assert Config().cluster is None
