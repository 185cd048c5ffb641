"""Retained messages survive a broker restart, a SIGKILL, and an older data folder."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from store_helpers import Opener, message

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.core.message import Message, Properties
from pigeon.core.node import Node
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.storage.database import SCHEMA_VERSION

CHILD = Path(__file__).with_name("retained_child.py")
LEGACY = Path(__file__).parent / "fixtures" / "pigeon-0.1"


def lamp(body: bytes, ttl: int | None = None) -> Message:
    return Message("amq.topic", "home.lamp", Properties(ttl=ttl), body)


def vhost_json(management_url: str, name: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{management_url.rstrip('/')}/api/vhosts/{urllib.request.quote(name, safe='')}",
        headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        found: dict[str, object] = json.loads(answer.read())
        return found


async def test_retained_messages_survive_a_broker_restart(tmp_path: Path) -> None:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=0
    )
    async with Broker(config) as broker:
        assert broker.node is not None
        retained = broker.node.vhost("/").retained
        retained.retain("home/lamp", lamp(b"on"))
        retained.retain("home/clock", lamp(b"tick", ttl=3_600_000))
        retained.retain("home/gone", lamp(b"x"))
        retained.retain("home/gone", lamp(b""))
        broker.node.add_vhost("deleted").retained.retain("a", lamp(b"a"))
        broker.node.delete_vhost("deleted")
    async with Broker(config) as broker:
        assert broker.node is not None
        found = dict(broker.node.vhost("/").retained.match("home/+"))
        assert {topic: m.body for topic, m in found.items()} == {
            "home/lamp": b"on",
            "home/clock": b"tick",
        }
        expires_at = found["home/clock"].expires_at
        assert expires_at is not None
        assert 3500 < expires_at - asyncio.get_running_loop().time() <= 3600
        assert found["home/lamp"].expires_at is None
        assert "deleted" not in broker.node.vhosts
        assert broker.management_url is not None
        answer = await asyncio.to_thread(vhost_json, broker.management_url, "/")
        assert answer["retained_messages"] == 2
        broker.node.add_vhost("deleted")
        assert len(broker.node.vhost("deleted").retained) == 0


def run_and_kill(data_dir: Path) -> list[bytes]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        lines = [child.stdout.readline()]
        if lines[0] != b"synced\n":
            pytest.fail(f"the child did not sync: {child.stderr.read().decode()[-2000:]}")
        # Kill it while it churns: after a few of its syncs, in the middle of more writes.
        deadline = time.monotonic() + 30
        while len(lines) < 4 and time.monotonic() < deadline:
            lines.append(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        return lines
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()


async def test_retained_messages_synced_before_a_sigkill_survive_it(
    open_store: Opener, data_dir: Path
) -> None:
    lines = run_and_kill(data_dir)
    assert len(lines) == 4, lines
    store = open_store()
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    node.restore(store.load())
    retained = node.vhost("/").retained
    kept = {topic: m.body for topic, m in retained.match("keep/#")}
    assert kept == {f"keep/{n}": b"kept %d" % n for n in range(100)}
    # The churn topics hold some generation's bodies, never an empty one (a clear).
    assert all(m.body for _, m in retained.match("churn/+"))


def version_of(folder: Path) -> int:
    conn = sqlite3.connect(folder / "pigeon.db")
    try:
        [(value,)] = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall()
        return int(value)
    finally:
        conn.close()


async def test_a_format_1_folder_migrates_and_keeps_retained_messages(
    open_store: Opener, data_dir: Path
) -> None:
    shutil.copytree(LEGACY, data_dir, ignore=shutil.ignore_patterns("README.md"))
    assert version_of(data_dir) == 1
    store = open_store()
    snapshot = store.load()
    assert version_of(data_dir) == SCHEMA_VERSION == 3
    assert snapshot.retained == [] and snapshot.messages  # the old messages are there
    store.retain_message("legacy", "a/b", message(1, b"kept"), None)
    done = asyncio.get_running_loop().create_future()
    store.sync(lambda: done.set_result(None))
    await asyncio.wait_for(done, 30)
    store.close()
    [got] = open_store().load().retained
    assert (got.vhost, got.topic, got.message.body) == ("legacy", "a/b", b"kept")


async def test_retained_bodies_are_encrypted_at_rest(open_store: Opener, data_dir: Path) -> None:
    key = bytes(range(32))
    store = open_store(encryption_key=key, compress_threshold=10)
    store.load()
    secret = b"very secret reading " * 20
    store.retain_message("/", "plant/valve", message(1, secret), None)
    store.close()
    assert b"very secret" not in (data_dir / "pigeon.db").read_bytes()  # (WAL: checkpointed)
    [got] = open_store(encryption_key=key).load().retained
    assert got.message.body == secret


async def test_a_damaged_retained_row_is_dropped_not_served(
    open_store: Opener, data_dir: Path
) -> None:
    store = open_store()
    store.load()
    store.retain_message("/", "good", message(1, b"fine"), None)
    store.retain_message("/", "bad", message(2, b"flipped"), None)
    store.close()
    conn = sqlite3.connect(data_dir / "pigeon.db")
    conn.execute("UPDATE retained SET body = ? WHERE topic = 'bad'", (b"flopped",))
    conn.commit()
    conn.close()
    assert [c.topic for c in open_store().load().retained] == ["good"]
