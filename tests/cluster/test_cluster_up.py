"""``pigeon cluster up``: prints every node's URLs, serves, and stops cleanly."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest

NODE_LINE = re.compile(r"node (\d): (amqp://\S+)  management (http://\S+)  mqtt (mqtt://\S+)")


def _read_urls(process: subprocess.Popen[str], count: int) -> list[tuple[str, str, str]]:
    assert process.stdout is not None
    found: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + 45
    while len(found) < count:
        assert time.monotonic() < deadline, "no URLs printed in time"
        line = process.stdout.readline()
        assert line, f"cluster up ended early ({process.poll()})"
        if match := NODE_LINE.search(line):
            found.append((match.group(2), match.group(3), match.group(4)))
    return found


@pytest.mark.usefixtures("nats_binary")
def test_up_prints_urls_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pigeon", "cluster", "up", "--nodes", "3", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        urls = _read_urls(process, 3)
        assert all(amqp.startswith("amqp://guest:guest@127.0.0.1:") for amqp, _, _ in urls)
        assert all(http.startswith("http://127.0.0.1:") for _, http, _ in urls)
        # Each node has MQTT on a port of its own (three nodes cannot share 1883).
        mqtt_ports = {urlsplit(mqtt).port for _, _, mqtt in urls}
        assert len(mqtt_ports) == 3
        for port in mqtt_ports:
            assert port is not None
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # Declared on node 1, found on node 3.
        first = pika.BlockingConnection(pika.URLParameters(urls[0][0]))
        first.channel().queue_declare("up-check", durable=True)
        first.close()
        deadline = time.monotonic() + 10
        while True:
            third = pika.BlockingConnection(pika.URLParameters(urls[2][0]))
            try:
                third.channel().queue_declare("up-check", passive=True)
                break
            except pika.exceptions.ChannelClosedByBroker:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            finally:
                if third.is_open:
                    third.close()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped" in out
    for folder in ("nats-1", "nats-2", "nats-3", "pigeon-1", "pigeon-2", "pigeon-3"):
        assert (tmp_path / folder).is_dir()
    # Every node stopped gracefully (its own log says so).
    for number in (1, 2, 3):
        assert "Pigeon stopped" in (tmp_path / f"pigeon-{number}" / "pigeon.log").read_text()
