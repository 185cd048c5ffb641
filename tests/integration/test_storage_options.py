"""Stored-body compression and encryption, through a restart, as a user configures them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from pigeon.broker import Broker
from pigeon.config import Config


def roundtrip(config: Config, body: bytes) -> bytes:
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.queue_declare("kept", durable=True)
        channel.confirm_delivery()
        channel.basic_publish("", "kept", body, pika.BasicProperties(delivery_mode=2))
        connection.close()
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        method, _, got = connection.channel().basic_get("kept", auto_ack=True)
        connection.close()
        assert method is not None
        return got


def test_compressed_and_encrypted_bodies_survive_a_restart(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(os.urandom(32).hex())
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path / "data",
        management_port=None,
        compress_threshold=64,
        encryption_key_file=key_file,
    )
    body = b"compress me " * 1000
    assert roundtrip(config, body) == body
    # On disk the body is neither plain nor merely compressed: the text never appears.
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    assert b"compress me compress me" not in raw


def test_a_wrong_key_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(os.urandom(16).hex())
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=tmp_path / "data",
        management_port=None,
        encryption_key_file=key_file,
    )
    assert roundtrip(config, b"secret") == b"secret"
    key_file.write_text(os.urandom(16).hex())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pigeon",
            "serve",
            "--port",
            "0",
            "--no-management",
            "--no-mqtt",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env={**os.environ, "PIGEON_ENCRYPTION_KEY_FILE": str(key_file)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "cannot start" in done.stderr and "key" in done.stderr


@pytest.mark.parametrize("flag", ["--unsafe-no-fsync"])
def test_unsafe_no_fsync_says_so_loudly(tmp_path: Path, flag: str) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pigeon",
            "serve",
            "--port",
            "0",
            "--no-management",
            "--no-mqtt",
            "--data-dir",
            str(tmp_path / "data"),
            flag,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "listening on" in line:
            break
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    process.stderr.close()
    assert any("WARNING" in line and "UNSAFE" in line for line in lines)
