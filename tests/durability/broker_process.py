"""A Pigeon broker in a child process, so that it can really be killed (SIGKILL).

The child is ``python -m pigeon serve --port 0 --no-management --data-dir DIR``
(with ``management=True``: ``--management-port 0`` instead; MQTT and MQTT over
WebSocket on free ports); it is ready when its
log (stderr) says ``listening on 127.0.0.1:PORT`` (and ``management listening on``). A thread
keeps reading the log into :attr:`BrokerProcess.lines` for the whole life of the
child, so a chatty broker never blocks on a full pipe and the tests can look for
WARNING and ERROR lines afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_LISTENING = re.compile(r"AMQP 0-9-1 listening on 127\.0\.0\.1:(\d+)")
_MANAGEMENT = re.compile(r"management listening on 127\.0\.0\.1:(\d+)")
_MQTT = re.compile(r"MQTT listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0


class BrokerFailed(AssertionError):
    """The child did not start, or logged something it must not."""


class BrokerProcess:
    """One data folder, served by a child broker that can be started many times."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        management: bool = False,
        args: Sequence[str] = (),
        mqtt: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.management = management
        self.management_port = 0
        self.mqtt = mqtt  # ready once MQTT listens too (``mqtt_port``)
        self.mqtt_port = 0
        self.args = list(args)  # more flags for ``pigeon serve``
        self.lines: list[str] = []  # every log line of every run, in order
        self.run_start = 0  # index in lines where the current run began
        self.port = 0
        self._child: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.poll() is None

    @property
    def pid(self) -> int:
        assert self._child is not None, "not started"
        return self._child.pid

    def start(self) -> None:
        assert not self.running, "already running"
        self.run_start = len(self.lines)
        self.port = self.management_port = self.mqtt_port = 0
        self._ready.clear()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pigeon",
                "serve",
                "--port",
                "0",
                *(["--management-port", "0"] if self.management else ["--no-management"]),
                *("--mqtt-port", "0", "--mqtt-ws-port", "0"),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "info",
                *self.args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, args=(self._child,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05):
            if self._child.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise BrokerFailed("the broker did not start:\n" + self.run_log())

    def _read(self, child: subprocess.Popen[str]) -> None:
        assert child.stderr is not None
        with child.stderr:
            for line in child.stderr:
                self.lines.append(line.rstrip("\n"))
                if self._ready.is_set():
                    continue
                if found := _LISTENING.search(line):
                    self.port = int(found.group(1))
                elif found := _MANAGEMENT.search(line):
                    self.management_port = int(found.group(1))
                elif found := _MQTT.search(line):
                    self.mqtt_port = int(found.group(1))
                if (
                    self.port
                    and (self.management_port or not self.management)
                    and (self.mqtt_port or not self.mqtt)
                ):
                    self._ready.set()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (clients closed, store written and closed)."""
        self._end(signal.SIGTERM)
        assert self._child is not None
        if self._child.returncode != 0:
            raise BrokerFailed(
                f"clean stop exited with {self._child.returncode}:\n" + self.run_log()
            )

    def _end(self, signum: int) -> None:
        child = self._child
        if child is None or child.returncode is not None:
            return
        child.send_signal(signum)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def run_log(self) -> str:
        return "\n".join(self.lines[self.run_start :])

    def lines_with(self, level: str, since: int = 0) -> list[str]:
        """Log lines of a level (``WARNING``, ``ERROR``) from index ``since`` on."""
        return [line for line in self.lines[since:] if f" {level} " in line]

    def crash_warnings(self, since: int = 0) -> list[str]:
        """WARNING lines a plain SIGKILL must not cause. The one exception: a kill
        while SQLite writes a transaction to the WAL leaves it cut short, which the
        broker reports because it cannot tell it from damage to that transaction."""
        return [
            line
            for line in self.lines_with("WARNING", since)
            if "last transaction cut short" not in line
        ]

    def check_no_errors(self) -> None:
        """An ERROR (or a traceback) in the broker's log is a bug, as in tests/conftest.py."""
        errors = self.lines_with("ERROR") + [
            line for line in self.lines if line.startswith(("Traceback", "Fatal Python error"))
        ]
        if errors:
            raise BrokerFailed("the broker logged errors:\n" + "\n".join(errors))
