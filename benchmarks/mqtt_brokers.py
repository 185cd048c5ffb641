"""Private MQTT broker processes for side-by-side runs: Mosquitto and Pigeon.

Mosquitto (Debian's ``mosquitto``) gets its own config file on a free loopback
port: anonymous clients allowed, persistence off (its default), ``set_tcp_nodelay
true`` (its default leaves Nagle's algorithm on, which costs small messages tens
of milliseconds at a low rate and would make the latency comparison meaningless),
everything else at its defaults (``max_inflight_messages 20``,
``max_queued_messages 1000`` per client).

Pigeon is ``pigeon serve`` from this checkout with ``--mqtt-port``; a checkout
whose ``pigeon serve`` has no such option, or whose port refuses connections or
never answers CONNECT with a CONNACK, is reported as "MQTT listener missing"
(``PigeonMqttNode.missing``) and the harness measures Mosquitto alone.
"""

from __future__ import annotations

import os
import resource
import shlex
import socket
import subprocess
import sys
import time

from benchmarks.brokers import DEFAULT_PIGEON_CMD, REPO, BrokerProcess, PigeonNode, free_port

MOSQUITTO = "/usr/sbin/mosquitto"
# CONNECT, MQTT 3.1.1, clean session, keep-alive 60, client id "probe" (§3.1).
_PROBE_CONNECT = b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05probe"


def probe_mqtt(port: int, timeout: float = 5.0) -> str | None:
    """``None`` when 127.0.0.1:``port`` answers CONNECT with an accepting CONNACK,
    else why not ("connection refused", "no CONNACK within 5 s", ...)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(_PROBE_CONNECT)
            answer = b""
            deadline = time.monotonic() + timeout
            while len(answer) < 4 and time.monotonic() < deadline:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return "the connection was closed without a CONNACK"
                answer += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except ConnectionRefusedError:
        return f"connection refused on 127.0.0.1:{port}"
    except TimeoutError:
        return f"no CONNACK within {timeout:g} s on 127.0.0.1:{port}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if answer[:2] != b"\x20\x02":
        return f"no CONNACK: the answer was {answer.hex()}"
    if answer[3] != 0:
        return f"CONNACK refused the connection (code {answer[3]})"
    return None


def wait_for_mqtt(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll until the port answers CONNECT with a CONNACK (or the process exits)."""
    deadline = time.monotonic() + timeout
    reason: str | None = "not tried"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode} before listening")
        reason = probe_mqtt(port, timeout=2.0)
        if reason is None:
            return
        time.sleep(0.1)
    raise TimeoutError(f"no MQTT listener on 127.0.0.1:{port} after {timeout} s: {reason}")


def raise_open_files() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, so the brokers this process
    starts (they inherit it) can hold 10,000 connections; return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class MosquittoNode(BrokerProcess):
    """A throw-away Mosquitto with its own config on a free loopback port."""

    name = "mosquitto"

    def __init__(self, binary: str = MOSQUITTO) -> None:
        super().__init__()
        self.binary = binary
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
        )
        log = (self.dir / "broker.log").open("wb")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_mqtt(self.port, 15, self.process)
        self.pid = self.process.pid
        self.version = mosquitto_version(self.binary)


def mosquitto_version(binary: str = MOSQUITTO) -> str:
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].strip() if first else "mosquitto ?"


def pigeon_serve_help(env: dict[str, str]) -> str:
    """This checkout's ``pigeon serve --help`` (to see which MQTT options it has)."""
    argv = [sys.executable, "-m", "pigeon", "serve", "--help"]
    out = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout


class PigeonMqttNode(PigeonNode):
    """``pigeon serve --mqtt-port P`` from this checkout; ``missing`` says why its MQTT
    listener cannot be measured (``None`` when it can)."""

    def __init__(self, command: str = DEFAULT_PIGEON_CMD) -> None:
        super().__init__(command)
        self.mqtt_port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.mqtt_port}"
        self.missing: str | None = None

    def start(self) -> None:
        python_path = os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p
        )
        options = pigeon_serve_help({**os.environ, "PYTHONPATH": python_path})
        if "--mqtt-port" in options:
            self.command += f" --mqtt-port {self.mqtt_port}"
            if "--mqtt-ws-port" in options:  # never the default 15675 of another broker
                self.command += " --mqtt-ws-port 0"
        else:
            self.missing = "`pigeon serve` has no --mqtt-port option in this checkout"
        super().start()  # waits for the AMQP listener
        self.url = f"mqtt://127.0.0.1:{self.mqtt_port}"
        if self.missing is None:
            self.missing = probe_mqtt(self.mqtt_port)


def describe_command(node: BrokerProcess) -> str:
    if isinstance(node, PigeonMqttNode):
        return node.command
    if isinstance(node, MosquittoNode):
        return f"{shlex.quote(node.binary)} -c mosquitto.conf"
    return node.name
