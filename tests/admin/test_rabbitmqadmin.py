"""RabbitMQ's own ``rabbitmqadmin`` (Debian's rabbitmq-server ships it) against Pigeon."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from admin_helpers import Running

RABBITMQADMIN = shutil.which("rabbitmqadmin")
pytestmark = pytest.mark.skipif(RABBITMQADMIN is None, reason="rabbitmqadmin not installed")


def admin(running: Running, *args: str) -> str:
    assert RABBITMQADMIN is not None
    port = running.base.rsplit(":", 1)[1]
    done = subprocess.run(
        [RABBITMQADMIN, "-H", "127.0.0.1", "-P", port, "-u", "guest", "-p", "guest", *args],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_declare_publish_get_purge_delete(running: Running, uid: str) -> None:
    queue, exchange = f"ra-q-{uid}", f"ra-x-{uid}"
    admin(running, "declare", "queue", f"name={queue}", "durable=false")
    admin(running, "declare", "exchange", f"name={exchange}", "type=fanout")
    admin(running, "declare", "binding", f"source={exchange}", f"destination={queue}")
    assert "Message published" in admin(running, "publish", f"exchange={exchange}",
                                        "routing_key=any", "payload=hello")
    queues = json.loads(admin(running, "-f", "raw_json", "list", "queues"))
    assert {"name": queue, "messages": 1} in [
        {"name": q["name"], "messages": q["messages"]} for q in queues]
    got = json.loads(admin(running, "-f", "raw_json", "get", f"queue={queue}",
                           "ackmode=ack_requeue_true"))
    assert got[0]["payload"] == "hello" and got[0]["exchange"] == exchange
    admin(running, "purge", "queue", f"name={queue}")
    assert running.api.get(f"/api/queues/%2F/{queue}")["messages"] == 0
    admin(running, "delete", "binding", f"source={exchange}", "destination_type=queue",
          f"destination={queue}")
    admin(running, "delete", "queue", f"name={queue}")
    admin(running, "delete", "exchange", f"name={exchange}")
    assert running.api.request("GET", f"/api/queues/%2F/{queue}").status == 404


def test_show_overview_and_lists(running: Running) -> None:
    overview = admin(running, "show", "overview")
    assert "pigeon@localhost" in overview
    for kind in ("exchanges", "bindings", "users", "vhosts", "nodes", "connections",
                 "channels", "consumers", "permissions"):
        admin(running, "list", kind)


def test_export_then_import(running: Running, uid: str, tmp_path: Path) -> None:
    queue = f"ra-def-{uid}"
    admin(running, "declare", "queue", f"name={queue}", "durable=true")
    target = tmp_path / "definitions.json"
    admin(running, "export", str(target))
    exported = json.loads(target.read_text())
    assert queue in {q["name"] for q in exported["queues"]}
    admin(running, "delete", "queue", f"name={queue}")
    admin(running, "import", str(target))
    assert running.api.get(f"/api/queues/%2F/{queue}")["durable"] is True
