"""A Pigeon node as a ``pigeon serve`` process on the module's JetStream servers (so
that a test can kill it), and an HTTP client for its management API."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pigeon.cluster.natsserver import LocalCluster, free_ports


@dataclass
class Process:
    name: str
    amqp_port: int
    management_url: str
    process: subprocess.Popen[bytes]


def http(base: str, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base.rstrip('/')}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    token = base64.b64encode(b"guest:guest").decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as failed:
        raw, status = failed.read(), failed.code
    return status, (json.loads(raw) if raw and path != "/metrics" else raw.decode())


def serve(cluster: LocalCluster, name: str, folder: Path, timeout: float) -> Process:
    amqp, management = free_ports(2)
    command = [
        sys.executable, "-m", "pigeon", "serve", "--no-mqtt", "--data-dir", "",
        "--port", str(amqp), "--management-port", str(management),
        "--cluster", ",".join(cluster.urls), "--cluster-monitor", ",".join(cluster.monitor_urls),
        "--node-name", name,
    ]  # fmt: skip
    environ = {**os.environ, "PIGEON_CLUSTER_NODE_TIMEOUT": str(timeout)}
    with (folder / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=environ)
    found = Process(name, amqp, f"http://127.0.0.1:{management}", process)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (folder / f"{name}.log").read_text()
        try:
            if http(found.management_url, "/api/overview")[0] == 200:
                return found
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{name} did not start"
        time.sleep(0.05)


def stop(process: Process) -> None:
    if process.process.poll() is None:
        process.process.terminate()
        process.process.wait(15)
