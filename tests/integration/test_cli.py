"""`pigeon` as a user runs it: a real process, real signals, a real client."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
from helpers import RawClient
from pika.exceptions import ConnectionClosedByBroker

from pigeon import __version__

LISTENING = re.compile(r"AMQP 0-9-1 listening on 127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    lines: list[str]


def _serve(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Served:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pigeon",
            "serve",
            "--port",
            "0",
            "--no-management",
            "--mqtt-port",
            "0",
            "--mqtt-ws-port",
            "0",
            *args,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert process.stderr is not None
    lines: list[str] = []
    for line in process.stderr:  # the process logs its port once it is bound
        lines.append(line)
        if match := LISTENING.search(line):
            return Served(process, int(match.group(1)), lines)
    process.wait(timeout=10)
    raise AssertionError("the broker exited before listening:\n" + "".join(lines))


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Served]:
    running = _serve(*args, env=env, cwd=cwd)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(timeout=10)
        assert running.process.stderr is not None
        running.process.stderr.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving("--data-dir", str(tmp_path / "data")) as running:
        yield running


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pigeon", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == f"pigeon {__version__}"


def test_sigterm_closes_clients_with_320_and_exits_cleanly(served: Served) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", served.port))
    channel = connection.channel()
    channel.queue_declare("cli-durable", durable=True)
    served.process.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosedByBroker) as closed:
        connection.process_data_events(time_limit=10)
        connection.process_data_events(time_limit=10)
    assert closed.value.reply_code == 320
    assert served.process.wait(timeout=10) == 0


def test_ctrl_c_stops_the_broker(served: Served) -> None:
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(timeout=10) == 0
    assert served.process.stderr is not None
    rest = served.process.stderr.read()
    assert "received SIGINT, shutting down" in rest
    assert "ERROR" not in rest


def test_json_logs_one_object_per_line(tmp_path: Path) -> None:
    with serving("--data-dir", str(tmp_path / "data"), env={"PIGEON_LOG_JSON": "true"}) as running:
        entries = [json.loads(line) for line in running.lines]
        assert entries[-1]["level"] == "info"
        assert entries[-1]["logger"] == "pigeon.broker"
        assert LISTENING.search(entries[-1]["message"])


def test_settings_precedence_file_environment_flags(tmp_path: Path) -> None:
    config = tmp_path / "pigeon.toml"
    config.write_text('log_level = "debug"\nheartbeat = 7\n')
    # The flag --port 0 beats the default; the environment beats the file for the log level
    # and the heartbeat the broker offers. At "warning" the listening line (info) would
    # not be logged at all, so the level comes from the flag here and the file's "debug"
    # must lose to it too.
    with serving(
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "data"),
        "--log-level",
        "info",
        env={"PIGEON_HEARTBEAT": "9"},
    ) as running:
        assert not any("DEBUG" in line for line in running.lines)
        with RawClient(f"amqp://guest:guest@127.0.0.1:{running.port}/") as client:
            tune = client.login("guest", "guest")
            assert tune.heartbeat == 9


def test_bad_settings_are_refused_clearly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pigeon", "serve", "--port", "0"],
        env={**os.environ, "PIGEON_LOG_LEVEL": "loud"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "log_level must be one of" in done.stderr


def test_the_default_data_folder_is_created_in_the_working_directory(tmp_path: Path) -> None:
    with serving(cwd=tmp_path):
        assert (tmp_path / "pigeon-data").is_dir()


def _refused(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``pigeon serve`` that must stop at once: exit 1 and one log line, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "pigeon", "serve", *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=30,
        cwd=cwd, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot start: " in lines[0], done.stderr
    return lines[0]


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    line = _refused(tmp_path, "--port", "0", "--no-management", "--no-mqtt", "--data-dir", "data")
    assert "data_dir data is a file, not a folder" in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_busy_amqp_port_names_the_setting(tmp_path: Path, busy_port: int) -> None:
    line = _refused(tmp_path, "--port", str(busy_port), "--no-management", "--no-mqtt",
                    "--data-dir", "data")  # fmt: skip
    assert f"cannot listen on 127.0.0.1:{busy_port}" in line
    assert "set port (--port) or PIGEON_PORT to a free port" in line


def test_a_busy_management_port_is_found_before_amqp_listens(
    tmp_path: Path, busy_port: int
) -> None:
    line = _refused(tmp_path, "--port", "0", "--no-mqtt", "--management-port", str(busy_port),
                    "--data-dir", "data")  # fmt: skip
    assert "set management_port (--management-port) or PIGEON_MANAGEMENT_PORT" in line
    assert "listening" not in line


def test_a_busy_websocket_port_names_its_flag(tmp_path: Path, busy_port: int) -> None:
    # MQTT over WebSocket is on by default: its port is checked with the others.
    line = _refused(tmp_path, "--port", "0", "--no-management", "--mqtt-port", "0",
                    "--mqtt-ws-port", str(busy_port), "--data-dir", "data")  # fmt: skip
    assert "set mqtt_ws_port (--mqtt-ws-port) or PIGEON_MQTT_WS_PORT" in line


def test_no_mqtt_ws_turns_websocket_off(tmp_path: Path) -> None:
    with serving("--data-dir", str(tmp_path / "a")) as running:  # on by default
        assert any("MQTT over WebSocket listening" in line for line in running.lines)
    with serving("--no-mqtt-ws", "--data-dir", str(tmp_path / "b")) as running:
        assert any("MQTT listening" in line for line in running.lines)
        assert not any("WebSocket" in line for line in running.lines)


# A sitecustomize that makes one package's import fail, as if it were not installed.
BLOCKER = """
import os, sys

class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == os.environ["PIGEON_TEST_BLOCK"]:
            raise ImportError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _Missing())
"""


@pytest.mark.parametrize(("package", "setting", "extra"), [
    ("zstandard", "compress_threshold", "storage"),
    ("cryptography", "encryption_key_file", "storage"),
    ("jwt", "[tokens]", "tokens"),
])  # fmt: skip
def test_a_missing_optional_package_names_the_extra(
    tmp_path: Path, package: str, setting: str, extra: str
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "key").write_text(os.urandom(16).hex())
    settings = {
        "compress_threshold": "compress_threshold = 100\n",
        "encryption_key_file": f'encryption_key_file = "{tmp_path / "key"}"\n',
        "[tokens]": '[tokens]\nresource_server_id = "pigeon"\n',
    }
    (tmp_path / "pigeon.toml").write_text(settings[setting])
    python_path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    line = _refused(
        tmp_path, "--config", "pigeon.toml", "--port", "0", "--no-management", "--no-mqtt",
        "--data-dir", "data", env={"PYTHONPATH": python_path, "PIGEON_TEST_BLOCK": package},
    )  # fmt: skip
    assert line.endswith(
        f"{setting} needs the '{'PyJWT' if package == 'jwt' else package}' package, which "
        f"is not installed: pip install 'pigeon-broker[{extra}]'"
    )
