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
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_declare_publish_get_purge_delete(running: Running, uid: str) -> None:
    queue, exchange = f"ra-q-{uid}", f"ra-x-{uid}"
    admin(running, "declare", "queue", f"name={queue}", "durable=false")
    admin(running, "declare", "exchange", f"name={exchange}", "type=fanout")
    admin(running, "declare", "binding", f"source={exchange}", f"destination={queue}")
    assert "Message published" in admin(
        running, "publish", f"exchange={exchange}", "routing_key=any", "payload=hello"
    )
    queues = json.loads(admin(running, "-f", "raw_json", "list", "queues"))
    assert {"name": queue, "messages": 1} in [
        {"name": q["name"], "messages": q["messages"]} for q in queues
    ]
    got = json.loads(
        admin(running, "-f", "raw_json", "get", f"queue={queue}", "ackmode=ack_requeue_true")
    )
    assert got[0]["payload"] == "hello" and got[0]["exchange"] == exchange
    admin(running, "purge", "queue", f"name={queue}")
    assert running.api.get(f"/api/queues/%2F/{queue}")["messages"] == 0
    admin(
        running,
        "delete",
        "binding",
        f"source={exchange}",
        "destination_type=queue",
        f"destination={queue}",
    )
    admin(running, "delete", "queue", f"name={queue}")
    admin(running, "delete", "exchange", f"name={exchange}")
    assert running.api.request("GET", f"/api/queues/%2F/{queue}").status == 404


def test_show_overview_and_lists(running: Running) -> None:
    overview = admin(running, "show", "overview")
    assert "pigeon@localhost" in overview
    for kind in (
        "exchanges",
        "bindings",
        "users",
        "vhosts",
        "nodes",
        "connections",
        "channels",
        "consumers",
        "permissions",
    ):
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


def test_policies_operator_policies_and_vhost_limits(running: Running, uid: str) -> None:
    queue, policy = f"ra-pol-{uid}", f"ra-policy-{uid}"
    admin(running, "declare", "queue", f"name={queue}", "durable=false")
    admin(
        running,
        "declare",
        "policy",
        f"name={policy}",
        f"pattern=^{queue}$",
        'definition={"max-length": 5, "dead-letter-exchange": "dlx"}',
        "priority=3",
        "apply-to=queues",
    )
    listed = json.loads(admin(running, "-f", "raw_json", "list", "policies"))
    assert {
        "vhost": "/",
        "name": policy,
        "pattern": f"^{queue}$",
        "apply-to": "queues",
        "definition": {"max-length": 5, "dead-letter-exchange": "dlx"},
        "priority": 3,
    } in listed
    admin(
        running,
        "declare",
        "operator_policy",
        f"name=op-{uid}",
        f"pattern=^{queue}$",
        'definition={"max-length": 2}',
        "apply-to=queues",
    )
    assert f"op-{uid}" in admin(running, "list", "operator_policies")
    shown = running.api.get(f"/api/queues/%2F/{queue}")
    assert (shown["policy"], shown["operator_policy"]) == (policy, f"op-{uid}")
    assert shown["effective_policy_definition"] == {"dead-letter-exchange": "dlx", "max-length": 2}
    admin(running, "delete", "operator_policy", f"name=op-{uid}")
    admin(running, "delete", "policy", f"name={policy}")
    assert running.api.get(f"/api/queues/%2F/{queue}")["policy"] is None
    assert policy not in admin(running, "list", "policies")

    admin(running, "declare", "vhost_limit", "vhost=/", "name=max-queues", "value=1000")
    limits = json.loads(admin(running, "-f", "raw_json", "list", "vhost_limits"))
    assert limits == [{"vhost": "/", "value": {"max-queues": 1000}}]
    admin(running, "delete", "vhost_limit", "vhost=/", "name=max-queues")
    assert json.loads(admin(running, "-f", "raw_json", "list", "vhost_limits")) == []
    admin(running, "delete", "queue", f"name={queue}")


def test_runtime_parameters(running: Running, uid: str) -> None:
    name = f"ra-up-{uid}"
    admin(
        running,
        "declare",
        "parameter",
        "component=federation-upstream",
        f"name={name}",
        'value={"uri": "amqp://127.0.0.1"}',
    )
    listed = json.loads(admin(running, "-f", "raw_json", "list", "parameters"))
    assert {
        "value": {"uri": "amqp://127.0.0.1"},
        "vhost": "/",
        "component": "federation-upstream",
        "name": name,
    } in listed
    admin(running, "delete", "parameter", "component=federation-upstream", f"name={name}")
    assert name not in admin(running, "list", "parameters")
