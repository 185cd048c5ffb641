"""Private broker processes for side-by-side runs: a RabbitMQ node and a Pigeon.

Each gets a temporary data directory and free loopback ports, is started and
stopped by the harness, and never touches the system RabbitMQ on 5672 (its own
node name, Mnesia directory, config, cookie and ports; no plugins, so no
management listener).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_PIGEON_CMD = (
    f"{shlex.quote(sys.executable)} -m pigeon serve --host 127.0.0.1 --port {{port}}"
    " --data-dir {data_dir} --log-level warning"
)


def free_port() -> int:
    """A loopback port that was free a moment ago (the broker binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_amqp(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll until the port answers the AMQP protocol header with a frame."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                if sock.recv(1) == b"\x01":  # a method frame: connection.start
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no AMQP listener on 127.0.0.1:{port} after {timeout} s")


def wait_for_listener(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll until something accepts connections on the port (RabbitMQ's management
    listener may open after its AMQP one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of every process below ``pid``, read from /proc."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append((int(entry), name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


class BrokerProcess:
    """A broker this harness started: its name, URL, measured pid and version."""

    name = "broker"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"pigeon-bench-{self.name}-"))
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the process whose CPU and RSS are measured
        self.version = "?"

    def __enter__(self) -> BrokerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def _spawn(self, argv: list[str], env: dict[str, str], timeout: float) -> None:
        log = (self.dir / "broker.log").open("wb")
        self.process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        wait_for_amqp(self.port, timeout, self.process)

    def log_text(self) -> str:
        try:
            return (self.dir / "broker.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the measured process (a clean shutdown), then the whole group."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid or process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the group this harness created
                process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class RabbitNode(BrokerProcess):
    """A throw-away RabbitMQ node (Debian's rabbitmq-server) on free ports; with
    ``management``, its HTTP API too, on ``management_url``."""

    name = "rabbitmq"

    def __init__(self, management: bool = False) -> None:
        super().__init__()
        self.management_port = free_port() if management else None
        self.management_url = f"http://127.0.0.1:{self.management_port}" if management else None

    def start(self) -> None:
        dist_port = free_port()
        conf = f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
        plugins = "[]"
        if self.management_port is not None:
            conf += f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            plugins = "[rabbitmq_management]"
        (self.dir / "rabbitmq.conf").write_text(conf)
        (self.dir / "enabled_plugins").write_text(f"{plugins}.\n")
        env = {
            **os.environ,
            "HOME": str(self.dir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": f"bench-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.dir / "plugins"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self._spawn([RABBITMQ_SERVER], env, timeout=90)
        assert self.process is not None
        if self.management_port is not None:
            wait_for_listener(self.management_port, 60, self.process)
        beams = [pid for pid, name in descendants(self.process.pid) if name == "beam.smp"]
        self.pid = beams[0] if beams else self.process.pid
        self.version = self._version()

    def _version(self) -> str:
        log = self.log_text()
        rabbit = re.search(r"RabbitMQ (\d+\.\d+\.\d+)", log)
        erlang = re.search(r"Erlang:\s+(\S+)", log)
        return f"RabbitMQ {rabbit[1] if rabbit else '?'}, Erlang {erlang[1] if erlang else '?'}"


class PigeonNode(BrokerProcess):
    """``pigeon serve`` from this checkout (``src/`` on PYTHONPATH), on a free port."""

    name = "pigeon"

    def __init__(self, command: str = DEFAULT_PIGEON_CMD) -> None:
        super().__init__()
        self.command = command

    def start(self) -> None:
        argv = shlex.split(self.command.format(port=self.port, data_dir=self.dir / "data"))
        python_path = os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p
        )
        env = {**os.environ, "PYTHONPATH": python_path, "PIGEON_MANAGEMENT_PORT": "off"}
        self._spawn(argv, env, timeout=30)
        assert self.process is not None
        self.pid = self.process.pid
        probe = [sys.executable, "-c", "import pigeon; print(pigeon.__version__)"]
        out = subprocess.run(probe, env=env, capture_output=True, text=True, check=False)
        self.version = f"Pigeon {out.stdout.strip() or '?'}"


class SinkNode(BrokerProcess):
    """``python -m benchmarks.sink``: the trivial server that shows the load generator's ceiling."""

    name = "sink"

    def __init__(self, flood_size: int = 0) -> None:
        super().__init__()
        self.flood_size = flood_size

    def start(self) -> None:
        argv = [sys.executable, "-m", "benchmarks.sink", "--port", str(self.port)]
        argv += ["--flood-size", str(self.flood_size)]
        python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        self._spawn(argv, {**os.environ, "PYTHONPATH": python_path}, timeout=15)
        assert self.process is not None
        self.pid = self.process.pid
        self.version = "benchmarks.sink"
