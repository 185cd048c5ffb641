"""``pigeon cluster up``: a local JetStream cluster and Pigeon front-ends on free
loopback ports, each with its folder under ``--dir``, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the command runs: ``pigeon serve`` builds this parser
    from pigeon.cluster.natsserver import LocalCluster

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser("cluster", help="run a local cluster (docs/cluster.md)")
    actions = cluster.add_subparsers(dest="cluster_command", required=True)
    up = actions.add_parser(
        "up", help="start a local JetStream cluster and Pigeon front-ends until Ctrl-C"
    )
    up.add_argument("--nodes", type=int, default=3, help="servers and front-ends (default 3)")
    up.add_argument("--dir", type=Path, required=True, help="where every process keeps data")
    up.add_argument("--nats-server", type=Path, help="the nats-server binary to run")
    up.add_argument(
        "--fast",
        action="store_true",
        help="NATS's default lazy fsync instead of sync_interval: always (docs/cluster.md)",
    )


@dataclass
class FrontEnd:
    number: int
    amqp_port: int
    management_port: int
    mqtt_port: int
    mqtt_ws_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def mqtt_ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.mqtt_ws_port}/ws"


def main(args: argparse.Namespace) -> int:
    from pigeon.cluster.natsserver import LocalCluster, NatsServerError

    if args.nodes < 1:
        print("pigeon cluster up: --nodes must be at least 1", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _s, _f: stop.set())
    directory: Path = args.dir.resolve()
    nats = LocalCluster(
        directory,
        size=args.nodes,
        binary=args.nats_server,
        sync="default" if args.fast else "always",
    )
    front_ends: list[FrontEnd] = []
    try:
        nats.start()
        # One after the other: a node that starts while another is still writing its
        # first definitions takes the bucket's users instead of writing its own (fresh
        # nodes started together each hash the default password with their own salt,
        # and a login checked against a hash replaced meanwhile is refused).
        for i in range(args.nodes):
            front_ends.append(_start_front_end(i + 1, nats, directory))
            _wait_listening(front_ends[-1:], stop)
        _print(nats, front_ends)
        while not stop.wait(0.5):
            if gone := next((f for f in front_ends if f.process.poll() is not None), None):
                print(f"node {gone.number} exited; see {gone.log}", file=sys.stderr)
                return 1
    except NatsServerError as error:
        print(f"pigeon cluster up: {error.text}", file=sys.stderr)
        return 1
    finally:
        _stop_front_ends(front_ends)
        nats.stop()
    print("stopped", flush=True)
    return 0


def _start_front_end(number: int, nats: LocalCluster, directory: Path) -> FrontEnd:
    from pigeon.cluster.natsserver import free_ports

    # Every listener on a port of its own: three nodes on one machine cannot share
    # the default ports (1883 for MQTT, say).
    amqp, management, mqtt, mqtt_ws = free_ports(4)
    folder = directory / f"pigeon-{number}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "pigeon.log"
    command = [
        sys.executable, "-m", "pigeon", "serve",
        "--port", str(amqp),
        "--management-port", str(management),
        "--mqtt-port", str(mqtt),
        "--mqtt-ws-port", str(mqtt_ws),
        "--data-dir", str(folder / "data"),
        "--cluster", ",".join(nats.urls),
        "--cluster-monitor", ",".join(nats.monitor_urls),
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return FrontEnd(number, amqp, management, mqtt, mqtt_ws, process, log)


def _wait_listening(front_ends: list[FrontEnd], stop: threading.Event) -> None:
    from pigeon.cluster.natsserver import NatsServerError

    deadline = time.monotonic() + START_TIMEOUT
    for front in front_ends:
        while not all(map(_accepts, (front.amqp_port, front.management_port, front.mqtt_port))):
            if front.process.poll() is not None:
                raise NatsServerError(f"node {front.number} did not start; see {front.log}")
            if time.monotonic() > deadline or stop.is_set():
                raise NatsServerError(f"node {front.number} not listening; see {front.log}")
            time.sleep(0.1)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _print(nats: LocalCluster, front_ends: list[FrontEnd]) -> None:
    sync = "always-sync" if nats.sync == "always" else "fast (NATS default fsync)"
    print(f"JetStream: {', '.join(nats.urls)} ({sync})")
    for front in front_ends:
        print(
            f"node {front.number}: {front.amqp_url}  management {front.management_url}"
            f"  mqtt {front.mqtt_url}  web-mqtt {front.mqtt_ws_url}"
        )
    print("Ctrl-C stops them all", flush=True)


def _stop_front_ends(front_ends: list[FrontEnd]) -> None:
    for front in front_ends:
        if front.process.poll() is None:
            front.process.send_signal(signal.SIGTERM)
    for front in front_ends:
        try:
            front.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            front.process.kill()
            front.process.wait()
