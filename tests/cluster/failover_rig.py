"""The processes of the failover tests, and the faults done to them.

Three nats-server processes (:class:`~pigeon.cluster.natsserver.LocalCluster`) and
Pigeon nodes, each a child ``python -m pigeon serve --cluster ...`` with its own data
folder and log file, on ports it picks itself (port 0; read back from its log). The
faults: SIGKILL (a crash: nothing of the process's shutdown runs), SIGSTOP/SIGCONT (a
process that stops answering and comes back: to its peers, a partition), restarts on
the same folders. Where things stand is read from the servers' ``/jsz`` monitoring
endpoint: the meta leader, and each stream's leader, replicas and message counts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pigeon.cluster.natsserver import LocalCluster, monitor

_LISTENING = re.compile(r"AMQP 0-9-1 listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0


class RigFailed(AssertionError):
    """A process did not start, or the cluster did not come back in time."""


@dataclass
class PigeonNode:
    """One Pigeon front-end in a child process; can be killed and started again."""

    name: str
    folder: Path
    nats: LocalCluster
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log_start: int = 0

    @property
    def log(self) -> Path:
        return self.folder / "pigeon.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        assert not self.running
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        command = [
            sys.executable, "-m", "pigeon", "serve",
            "--port", "0", "--no-management", "--no-mqtt", "--no-mqtt-ws",
            "--node-name", f"failover-{self.name}",
            "--data-dir", str(self.folder / "data"),
            "--log-level", "info",
            "--cluster", ",".join(self.nats.urls),
            "--cluster-monitor", ",".join(self.nats.monitor_urls),
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not (port := self._listening()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RigFailed(f"node {self.name} did not start:\n{self.run_log()}")
            time.sleep(0.05)
        self.port = port

    def _listening(self) -> int:
        found = _LISTENING.search(self.run_log())
        return int(found.group(1)) if found else 0

    def run_log(self) -> str:
        with self.log.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, signum: int) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def errors(self) -> list[str]:
        """ERROR lines and tracebacks of every run (a bug, as in tests/conftest.py)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line
            for line in text.splitlines()
            if " ERROR " in line or line.startswith(("Traceback", "Fatal Python error"))
        ]


class NatsServers:
    """Faults on a :class:`LocalCluster`'s servers, by index (0..size-1), and what
    ``/jsz`` says about them."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.stopped: set[int] = set()  # SIGSTOPped, not continued yet

    def names(self) -> list[str]:
        return [f"n{index + 1}" for index in range(self.cluster.size)]

    def index(self, name: str) -> int:
        return self.names().index(name)

    def alive(self, index: int) -> bool:
        return self.cluster.processes[index].poll() is None

    def kill(self, index: int) -> None:
        process = self.cluster.processes[index]
        process.kill()
        process.wait()

    def restart(self, index: int) -> None:
        """The same server again: same ports, same store folder."""
        assert not self.alive(index)
        assert self.cluster.binary is not None
        folder = self.cluster.directory / f"nats-{index + 1}"
        with (folder / "nats-server.log").open("ab") as log:
            self.cluster.processes[index] = subprocess.Popen(
                [str(self.cluster.binary), "-c", str(folder / "nats-server.conf")],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    def pause(self, index: int) -> None:
        """SIGSTOP: the server holds its sockets and answers nothing."""
        self.cluster.processes[index].send_signal(signal.SIGSTOP)
        self.stopped.add(index)

    def resume(self, index: int) -> None:
        self.cluster.processes[index].send_signal(signal.SIGCONT)
        self.stopped.discard(index)

    def jsz(self, streams: bool = False, consumers: bool = False) -> dict[str, dict[str, Any]]:
        """``/jsz`` of every live, running server that answers, by server name."""
        endpoint = "jsz?streams=true" if streams else "jsz"
        endpoint += "&consumers=true" if consumers else ""
        found = {}
        for index, url in enumerate(self.cluster.monitor_urls):
            if self.alive(index) and index not in self.stopped:
                data = monitor(url, endpoint, timeout=1.0)
                if data is not None:
                    found[self.names()[index]] = data
        if not found:
            raise RigFailed("no NATS server answers /jsz")
        return found

    def serving(self, client: str) -> list[int]:
        """The servers that hold a client connection named ``client`` (``/connz``)."""
        found = []
        for index, url in enumerate(self.cluster.monitor_urls):
            if self.alive(index) and index not in self.stopped:
                data = monitor(url, "connz", timeout=1.0) or {}
                if any(c.get("name") == client for c in data.get("connections") or []):
                    found.append(index)
        return found

    def meta_leader(self) -> str:
        leaders = {(d.get("meta_cluster") or {}).get("leader") for d in self.jsz().values()}
        leaders.discard(None)
        return str(leaders.pop()) if len(leaders) == 1 else ""

    def streams(self) -> dict[str, dict[str, Any]]:
        """Each stream's ``/jsz`` detail (cluster: leader and replicas; state), by
        name, as its leader tells it (else as any server does)."""
        found: dict[str, dict[str, Any]] = {}
        for server, data in self.jsz(streams=True).items():
            for account in data.get("account_details") or []:
                for stream in account.get("stream_detail") or []:
                    leader = (stream.get("cluster") or {}).get("leader")
                    if stream["name"] not in found or leader == server:
                        found[stream["name"]] = stream
        return found

    def consumer_leader(self, stream: str) -> str:
        """The leader of ``stream``'s (one) durable consumer, as ``/jsz`` says."""
        for data in self.jsz(streams=True, consumers=True).values():
            for account in data.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail["name"] != stream:
                        continue
                    for consumer in detail.get("consumer_detail") or []:
                        leader = (consumer.get("cluster") or {}).get("leader")
                        if leader:
                            return str(leader)
        return ""

    def all_current(self, streams: list[str]) -> bool:
        """Every server up, a current peer of the meta group and a current replica of
        each of ``streams`` (each with a leader), as the leaders see it: the cluster
        has caught up after a fault."""
        servers = self.jsz(streams=True)
        if len(servers) != self.cluster.size:
            return False
        leader = self.meta_leader()
        if leader not in servers:
            return False
        peers = self.cluster.size - 1
        if not _current((servers[leader].get("meta_cluster") or {}).get("replicas"), peers):
            return False
        details = self.streams()
        for name in streams:
            cluster = (details.get(name) or {}).get("cluster") or {}
            if cluster.get("leader") not in servers or not _current(cluster.get("replicas"), peers):
                return False
        return True

    def wait_current(self, streams: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.all_current(streams):
                    return
            except RigFailed:
                pass
            if time.monotonic() > deadline:
                raise RigFailed(f"the NATS cluster did not catch up within {timeout:g} s")
            time.sleep(0.2)


def _current(replicas: list[dict[str, Any]] | None, count: int) -> bool:
    """``count`` peers listed (all but the leader), each current and online."""
    peers = replicas or []
    return len(peers) == count and all(p.get("current") and not p.get("offline") for p in peers)
