"""Operating a cluster: every node lists every node (``/api/nodes``), the health
checks, ``pigeon_cluster_*`` metrics and ``pigeon ctl cluster_status``; a node killed
with SIGKILL is shown ``running: false`` by the other within the timeout.

Node a runs in this process, the others are ``pigeon serve`` processes (so that one
can be killed), all on the module's three JetStream servers.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from pigeon.broker import Broker
from pigeon.cluster.natsserver import LocalCluster
from pigeon.config import Config, ConfigError, load

from .pigeon_process import Process, http, serve, stop

TIMEOUT = 1.5  # cluster_node_timeout of every node here: heartbeats every 0.3 s
A, B = "pigeon-a@test", "pigeon-b@test"
NODE_FIELDS = (
    "name", "type", "running", "uptime", "mem_used", "mem_limit", "fd_used", "fd_total",
    "sockets_used", "disk_free", "disk_free_limit", "partitions", "applications", "listeners",
)  # fmt: skip


@pytest.fixture(scope="module")
def node_a(nats_cluster: LocalCluster) -> Iterator[Broker]:
    config = Config(
        mqtt_port=None,
        port=0,
        data_dir=None,
        management_port=0,
        cluster=",".join(nats_cluster.urls),
        cluster_monitor=",".join(nats_cluster.monitor_urls),
        node_name=A,
        cluster_node_timeout=TIMEOUT,
    )
    with Broker.in_thread(config) as broker:
        yield broker


@pytest.fixture(scope="module")
def node_b(
    nats_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    process = serve(nats_cluster, B, tmp_path_factory.mktemp("node-b"), TIMEOUT)
    yield process
    stop(process)


def _url(broker: Broker) -> str:
    assert broker.management_url is not None
    return broker.management_url


def _nodes_until(base: str, wanted: dict[str, bool], within: float) -> list[dict[str, Any]]:
    """``/api/nodes`` once every named node's ``running`` is as wanted."""
    deadline = time.monotonic() + within
    while True:
        status, nodes = http(base, "/api/nodes")
        assert status == 200
        # (A node's first heartbeat, before its management API starts, names it only.)
        running = {node["name"]: node["running"] and "mem_used" in node for node in nodes}
        if all(running.get(name) is state for name, state in wanted.items()):
            return list(nodes)
        assert time.monotonic() < deadline, f"{running} is not {wanted}"
        time.sleep(0.05)


def test_every_node_lists_every_node(node_a: Broker, node_b: Process) -> None:
    for base in (_url(node_a), node_b.management_url):
        nodes = _nodes_until(base, {A: True, B: True}, 10)
        assert {A, B} <= {node["name"] for node in nodes}
        for node in nodes:
            if node["name"] in (A, B):
                assert all(key in node for key in NODE_FIELDS), node
                assert node["partitions"] == [] and node["mem_used"] > 0
    status, found = http(_url(node_a), f"/api/nodes/{B}")
    assert status == 200 and found["name"] == B and found["running"] is True
    assert found["os_pid"] == str(node_b.process.pid)
    assert http(_url(node_a), "/api/nodes/pigeon-z@test")[0] == 404
    status, overview = http(node_b.management_url, "/api/overview")
    assert overview["node"] == B and overview["cluster"]["nodes_running"] >= 2
    assert overview["cluster_name"] == "pigeon"  # the cluster's, not the node's


def test_clients_reach_both_nodes(node_a: Broker, node_b: Process) -> None:
    """The nodes listed are the ones clients use: a pika connection to each shows on
    that node's own connection list."""
    for port, base in ((node_a.amqp_port, _url(node_a)), (node_b.amqp_port, node_b.management_url)):
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        try:
            deadline = time.monotonic() + 10
            while not http(base, "/api/connections")[1]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert all(c["node"] in (A, B) for c in http(base, "/api/connections")[1])
        finally:
            connection.close()


def test_health_checks(node_a: Broker, node_b: Process) -> None:
    status, health = http(node_b.management_url, "/api/health/checks/cluster")
    assert status == 200, health
    assert health["status"] == "ok" and health["connected"] and health["jetstream"]
    assert health["meta_leader"] in ("n1", "n2", "n3")
    assert health["durability"] == "always-sync"
    for check in (
        "ready-to-serve-clients",
        "node-is-quorum-critical",
        "node-is-mirror-sync-critical",
        "alarms",
        "local-alarms",
    ):
        assert http(_url(node_a), f"/api/health/checks/{check}") == (200, {"status": "ok"})


def test_metrics_have_the_cluster_set(node_a: Broker, node_b: Process) -> None:
    _nodes_until(_url(node_a), {A: True, B: True}, 10)
    status, text = http(_url(node_a), "/metrics")
    assert status == 200
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("pigeon_cluster_")
    }
    assert values["pigeon_cluster_connected"] == 1
    assert values["pigeon_cluster_jetstream_servers"] == 3
    assert values["pigeon_cluster_jetstream_available"] == 1
    assert values["pigeon_cluster_nodes_running"] >= 2
    assert values["pigeon_cluster_durability_always_sync"] == 1
    assert 0 <= values["pigeon_cluster_heartbeat_age_seconds"] < TIMEOUT
    assert values["pigeon_cluster_kv_watch_lag_seconds"] >= 0


def _ctl(base: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pigeon", "ctl", "--url", base, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_ctl_cluster_status_against_either_node(node_a: Broker, node_b: Process) -> None:
    _nodes_until(_url(node_a), {A: True, B: True}, 10)
    for base in (_url(node_a), node_b.management_url):
        done = _ctl(base, "cluster_status")
        assert done.returncode == 0, done.stderr
        assert {A, B} <= set(_section(done.stdout, "Running Nodes"))
        assert any(line.startswith(f"{B}: Pigeon ") for line in _section(done.stdout, "Versions"))
        assert _section(done.stdout, "Alarms") == ["(none)"]
        jetstream = _section(done.stdout, "JetStream")
        assert "Durability: always-sync" in jetstream
        assert "Servers: n1, n2, n3 (3 answering)" in jetstream
    as_json = json.loads(_ctl(node_b.management_url, "cluster-status", "--format", "json").stdout)
    assert {A, B} <= {node["name"] for node in as_json["nodes"]}


def test_a_killed_node_turns_not_running_within_the_timeout(
    node_a: Broker, node_b: Process, nats_cluster: LocalCluster, tmp_path: Path
) -> None:
    victim = serve(nats_cluster, "pigeon-victim@test", tmp_path, TIMEOUT)
    try:
        _nodes_until(_url(node_a), {victim.name: True}, 10)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        killed = time.monotonic()
        nodes = _nodes_until(_url(node_a), {victim.name: False, A: True}, TIMEOUT + 2)
        assert time.monotonic() - killed <= TIMEOUT + 2
        gone = next(node for node in nodes if node["name"] == victim.name)
        assert gone["partitions"] == [] and gone["heartbeat_age"] >= TIMEOUT * 0.5
        done = _ctl(_url(node_a), "cluster_status")
        assert victim.name in _section(done.stdout, "Disk Nodes")
        assert victim.name not in _section(done.stdout, "Running Nodes")
        # rabbitmqctl forget_cluster_node: gone from the list.
        assert _ctl(_url(node_a), "forget_cluster_node", victim.name).returncode == 0
        assert victim.name not in {n["name"] for n in http(_url(node_a), "/api/nodes")[1]}
        deadline = time.monotonic() + 10  # and from the other node, which watched it go
        while victim.name in {n["name"] for n in http(node_b.management_url, "/api/nodes")[1]}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # A running node is not forgotten.
        assert http(_url(node_a), f"/api/nodes/{B}", "DELETE")[0] == 409
    finally:
        stop(victim)


def test_a_node_that_stops_cleanly_says_so_at_once(
    node_a: Broker, nats_cluster: LocalCluster, tmp_path: Path
) -> None:
    leaving = serve(nats_cluster, "pigeon-leaving@test", tmp_path, TIMEOUT)
    _nodes_until(_url(node_a), {leaving.name: True}, 10)
    stop(leaving)
    nodes = _nodes_until(_url(node_a), {leaving.name: False}, TIMEOUT + 2)
    gone = next(node for node in nodes if node["name"] == leaving.name)
    assert gone["heartbeat_age"] < TIMEOUT  # its last word, not a timeout


def test_a_single_jetstream_server_is_healthy(nats_binary: Path, tmp_path: Path) -> None:
    with (
        LocalCluster(tmp_path, size=1, binary=nats_binary) as single,
        Broker.in_thread(
            Config(
                mqtt_port=None,
                port=0,
                data_dir=None,
                management_port=0,
                cluster=single.urls[0],
                cluster_monitor=single.monitor_urls[0],
            )
        ) as broker,
    ):
        status, health = http(_url(broker), "/api/health/checks/cluster")
        assert status == 200, health
        assert health["meta_leader"] == "n1"
        # Named after its AMQP port when none is given.
        assert health["nodes_running"] == 1
        assert http(_url(broker), "/api/nodes")[1][0]["name"].startswith("pigeon-")
        single.stop()  # NATS gone: the node is not ready to serve clients
        deadline = time.monotonic() + 10
        while (status := http(_url(broker), "/api/health/checks/cluster")[0]) != 503:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        status, ready = http(_url(broker), "/api/health/checks/ready-to-serve-clients")
        assert status == 503 and "not connected" in ready["reason"]
        scraped = http(_url(broker), "/metrics")[1]
        assert "pigeon_cluster_connected 0.0" in scraped
        assert "pigeon_cluster_jetstream_available 0.0" in scraped
        assert "pigeon_cluster_jetstream_servers 0.0" in scraped


def _panel_until(opened: Any, words: str, within: float = 10.0) -> str:
    """The UI's node panel text once it contains ``words`` (reloading to refresh it)."""
    deadline = time.monotonic() + within
    while True:
        opened.wait_for_selector("#node h2")
        text = str(opened.inner_text("#node"))
        if words in text:
            return text
        assert time.monotonic() < deadline, text
        opened.reload()


def test_the_ui_shows_the_cluster_and_its_nodes(
    node_a: Broker, node_b: Process, nats_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Headless Chromium on node a's UI: the cluster card, every node, and a node that
    stops marked "not running"."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("chromium is not installed")
    leaving = serve(nats_cluster, "pigeon-ui-leaving@test", tmp_path, TIMEOUT)
    try:
        with driver.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            opened = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            opened.on("pageerror", lambda e: errors.append(str(e)))
            opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            opened.goto(_url(node_a))
            opened.fill("input[name=user]", "guest")
            opened.fill("input[name=password]", "guest")
            opened.click("#login button[type=submit]")
            opened.wait_for_selector("main[data-page='#/'] #cluster")
            cluster = opened.inner_text("#cluster")
            assert "always-sync" in cluster and "n1" in cluster
            text = _panel_until(opened, leaving.name)
            assert A in text and B in text
            opened.wait_for_selector("#nodes")  # the table of nodes
            stop(leaving)  # it says so at once
            _panel_until(opened, f"{leaving.name} not running")
            browser.close()
            assert errors == []
    finally:
        stop(leaving)


def test_a_queue_shows_its_leader_and_members_on_every_node(
    node_a: Broker, node_b: Process
) -> None:
    """A durable queue declared with pika on node b: both nodes show where its stream's
    replicas are (RabbitMQ's quorum-queue fields)."""
    name = f"placed-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", node_b.amqp_port))
    try:
        connection.channel().queue_declare(name, durable=True)
    finally:
        connection.close()
    deadline = time.monotonic() + 10
    for base in (node_b.management_url, _url(node_a)):
        while "leader" not in (queue := http(base, f"/api/queues/%2F/{name}")[1]):
            assert time.monotonic() < deadline, queue
            time.sleep(0.05)
        assert queue["leader"] in ("n1", "n2", "n3")
        assert queue["members"] == ["n1", "n2", "n3"]
        assert queue["leader"] in queue["online"]


def test_node_settings_from_file_environment_and_flag(tmp_path: Path) -> None:
    settings = tmp_path / "pigeon.toml"
    settings.write_text('node_name = "pigeon@file"\ncluster_node_timeout = 2.5\n')
    assert load(settings, environ={}).node_name == "pigeon@file"
    assert load(settings, environ={}).cluster_node_timeout == 2.5
    environ = {"PIGEON_NODE_NAME": "pigeon@env", "PIGEON_CLUSTER_NODE_TIMEOUT": "1"}
    assert load(settings, environ=environ).node_name == "pigeon@env"
    assert load(settings, environ=environ).cluster_node_timeout == 1.0
    flagged = load(settings, environ=environ, overrides={"node_name": "pigeon@flag"})
    assert flagged.node_name == "pigeon@flag"
    with pytest.raises(ConfigError, match="cluster_node_timeout"):
        Config(cluster_node_timeout=0)
    with Broker.in_thread(Config(port=0, data_dir=None, management_port=None, mqtt_port=None,
                                 node_name="pigeon@single")) as single:  # fmt: skip
        assert single.node is not None and single.node.name == "pigeon@single"


def test_a_cluster_name_set_on_one_node_is_every_node_s(node_a: Broker, node_b: Process) -> None:
    named = {"name": "cluster_name", "value": "pigeon-production"}
    status, _ = http(_url(node_a), "/api/global-parameters/cluster_name", "PUT", named)
    assert status in (201, 204)
    deadline = time.monotonic() + 10
    while http(node_b.management_url, "/api/overview")[1]["cluster_name"] != named["value"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Prometheus sees both nodes in one cluster (RabbitMQ's dashboards group by it).
    for base in (_url(node_a), node_b.management_url):
        assert 'rabbitmq_cluster="pigeon-production"' in http(base, "/metrics")[1]
