"""``pigeon ctl`` run as a process against a real broker's management API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from admin_helpers import Running

# The real entry point: ``python -m pigeon ctl ...`` is what ``pigeon ctl ...`` runs.
COMMAND = [sys.executable, "-m", "pigeon", "ctl"]


def ctl(running: Running, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*COMMAND, "--url", running.base, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode == 0) is ok, (args, done.stdout, done.stderr)
    return done


def test_status_and_lists(running: Running, uid: str) -> None:
    running.api.request("PUT", f"/api/queues/%2F/ctl-{uid}", {})
    running.api.request(
        "PUT",
        f"/api/queues/%2F/ctl-qq-{uid}",
        {"durable": True, "arguments": {"x-queue-type": "quorum"}},
    )
    assert "pigeon@localhost" in ctl(running, "status").stdout
    table = ctl(running, "list", "queues").stdout.splitlines()
    assert table[0].split() == [
        "vhost",
        "name",
        "type",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    ]
    assert any(f"ctl-{uid}" in line for line in table[1:])
    assert any(line.split()[1:3] == [f"ctl-qq-{uid}", "quorum"] for line in table[1:])
    rows = json.loads(ctl(running, "list", "queues", "--format", "json").stdout)
    assert f"ctl-{uid}" in {r["name"] for r in rows}
    for kind in (
        "exchanges",
        "bindings",
        "connections",
        "channels",
        "consumers",
        "users",
        "vhosts",
    ):
        ctl(running, "list", kind)


def test_purge_delete_users_and_definitions(running: Running, uid: str, tmp_path: Path) -> None:
    api = running.api
    queue = f"ctl-p-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    api.request(
        "POST",
        "/api/exchanges/%2F/amq.default/publish",
        {"routing_key": queue, "payload": "x", "payload_encoding": "string", "properties": {}},
    )
    ctl(running, "purge", queue)
    assert api.get(f"/api/queues/%2F/{queue}")["messages"] == 0
    ctl(running, "add-user", f"ctl-{uid}", "pw", "--tags", "monitoring")
    ctl(
        running,
        "set-permissions",
        f"ctl-{uid}",
        "--configure",
        "^x$",
        "--write",
        ".*",
        "--read",
        ".*",
    )
    assert api.get(f"/api/permissions/%2F/ctl-{uid}")["configure"] == "^x$"
    exported = tmp_path / "defs.json"
    ctl(running, "export", str(exported))
    ctl(running, "delete", "queue", queue)
    assert api.request("GET", f"/api/queues/%2F/{queue}").status == 404
    ctl(running, "import", str(exported))
    assert api.get(f"/api/queues/%2F/{queue}")["name"] == queue


def test_errors_are_one_line_and_nonzero(running: Running) -> None:
    missing = ctl(running, "purge", "no-such-queue", ok=False)
    assert missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("pigeon ctl: 404 queue 'no-such-queue' in vhost '/'")
    gone = ctl(running, "delete", "exchange", "no-such-x", ok=False)
    assert "404 exchange 'no-such-x' in vhost '/' not found" in gone.stderr
    refused = ctl(running, "--password", "wrong", "status", ok=False)
    assert refused.stderr.startswith("pigeon ctl: 401")
    down = subprocess.run(
        [*COMMAND, "--url", "http://127.0.0.1:1", "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert down.returncode == 1 and down.stderr.startswith("pigeon ctl: cannot reach")


def test_policies_limits_and_parameters(running: Running, uid: str) -> None:
    api = running.api
    queue, policy = f"ctl-pol-{uid}", f"ctl-policy-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    ctl(
        running,
        "set-policy",
        policy,
        f"^{queue}$",
        '{"max-length": 7}',
        "--priority",
        "4",
        "--apply-to",
        "queues",
    )
    ctl(running, "set-operator-policy", f"op-{uid}", f"^{queue}$", '{"max-length": 3}')
    shown = api.get(f"/api/queues/%2F/{queue}")
    assert (shown["policy"], shown["operator_policy"]) == (policy, f"op-{uid}")
    assert shown["effective_policy_definition"] == {"max-length": 3}
    table = ctl(running, "list-policies").stdout
    assert policy in table and '{"max-length":7}' in table
    rows = json.loads(ctl(running, "list", "operator-policies", "--format", "json").stdout)
    assert f"op-{uid}" in {r["name"] for r in rows}
    ctl(running, "clear-operator-policy", f"op-{uid}")
    ctl(running, "clear-policy", policy)
    assert api.get(f"/api/queues/%2F/{queue}")["policy"] is None
    assert ctl(running, "clear-policy", policy, ok=False).stderr.startswith("pigeon ctl: 404")

    ctl(running, "set-vhost-limits", '{"max-queues": 900, "max-connections": 90}')
    assert api.get("/api/vhost-limits/%2F") == [
        {"vhost": "/", "value": {"max-connections": 90, "max-queues": 900}}
    ]
    ctl(running, "set-vhost-limits", '{"max-queues": 800}')  # replaces, as rabbitmqctl does
    assert api.get("/api/vhost-limits/%2F") == [{"vhost": "/", "value": {"max-queues": 800}}]
    ctl(running, "clear-vhost-limits")
    assert api.get("/api/vhost-limits/%2F") == []

    ctl(running, "set-user-limits", "guest", '{"max-channels": 900, "max-connections": 90}')
    ctl(running, "clear-user-limits", "guest", "max-connections")
    assert api.get("/api/user-limits/guest") == [{"user": "guest", "value": {"max-channels": 900}}]
    ctl(running, "clear-user-limits", "guest", "all")
    assert api.get("/api/user-limits/guest") == []

    ctl(running, "set-parameter", "shovel", f"sh-{uid}", '{"src-uri": "amqp://"}')
    assert f"sh-{uid}" in ctl(running, "list-parameters").stdout
    ctl(running, "clear-parameter", "shovel", f"sh-{uid}")
    ctl(running, "set-global-parameter", f"g-{uid}", '"text"')
    assert api.get(f"/api/global-parameters/g-{uid}")["value"] == "text"
    ctl(running, "clear-global-parameter", f"g-{uid}")
    bad = ctl(running, "set-policy", "bad", ".*", '{"message-ttl": -1}', ok=False)
    assert "not a valid message TTL" in bad.stderr
    assert "not valid JSON" in ctl(running, "set-policy", "bad", ".*", "{", ok=False).stderr


def test_usage_errors_exit_2_and_say_what_is_missing(running: Running, uid: str) -> None:
    alone = subprocess.run([*COMMAND], capture_output=True, text=True, timeout=30, check=False)
    assert alone.returncode == 2
    assert "set-permissions" in alone.stderr and "a command is required" in alone.stderr
    # No silent ".*": each of the three patterns must be given, as rabbitmqctl wants.
    ctl(running, "add-user", f"ctl-np-{uid}", "pw")
    bare = subprocess.run(
        [*COMMAND, "--url", running.base, "set-permissions", f"ctl-np-{uid}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bare.returncode == 2 and "--configure, --write, --read" in bare.stderr
    assert running.api.request("GET", f"/api/permissions/%2F/ctl-np-{uid}").status == 404
