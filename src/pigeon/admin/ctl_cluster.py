"""``pigeon ctl cluster_status`` and ``forget_cluster_node``, after rabbitmqctl's.

Asked of any node: every node answers for the whole cluster (``/api/nodes`` lists
them all from their heartbeats). The sections are rabbitmqctl's (basics, disk
nodes, running nodes, versions, alarms, network partitions, listeners) plus
JetStream's (the servers, the meta leader and the durability mode).
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from pigeon.admin.ctl_policies import ClientLike, CtlError


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", title, "", *(lines or ["(none)"])]


def _alarms(nodes: list[dict[str, Any]]) -> list[str]:
    found = []
    for node in nodes:
        if node.get("mem_alarm"):
            found.append(f"Memory alarm on node {node['name']}")
        if node.get("disk_free_alarm"):
            found.append(f"Free disk space alarm on node {node['name']}")
    return found


def _versions(nodes: list[dict[str, Any]]) -> list[str]:
    lines = []
    for node in nodes:
        if not node.get("running"):
            continue
        apps = {a.get("name"): a.get("version") for a in node.get("applications") or ()}
        lines.append(f"{node['name']}: Pigeon {apps.get('pigeon', '?')}")
    return lines


def _listeners(nodes: list[dict[str, Any]]) -> list[str]:
    return [
        f"Node: {node['name']}, interface: {entry.get('ip_address')}, "
        f"port: {entry.get('port')}, protocol: {entry.get('protocol')}"
        for node in nodes
        if node.get("running")
        for entry in node.get("listeners") or ()
    ]


def _jetstream(health: dict[str, Any]) -> list[str]:
    if not health.get("cluster"):
        return ["(single node: no JetStream cluster)"]
    servers = ", ".join(health.get("jetstream_servers") or []) or "unknown"
    return [
        f"Connected: {'yes' if health.get('connected') else 'no'} "
        f"({health.get('connected_server') or '-'})",
        f"Servers: {servers} ({health.get('servers_answering', '?')} answering)",
        f"Meta leader: {health.get('meta_leader') or 'unknown'}",
        f"JetStream answering: {'yes' if health.get('jetstream') else 'no'}",
        f"Durability: {health.get('durability', 'unknown')}",
    ]


def cluster_status(client: ClientLike, output: str) -> str:
    overview = client.call("GET", "/overview")
    nodes: list[dict[str, Any]] = client.call("GET", "/nodes")
    health = _health(client)
    if output == "json":
        return json.dumps(
            {"cluster_name": overview.get("cluster_name"), "nodes": nodes, "health": health},
            indent=2,
        )
    names = [node["name"] for node in nodes]
    running = [node["name"] for node in nodes if node.get("running")]
    partitions = [
        f"Node {node['name']} cannot talk to {', '.join(node['partitions'])}"
        for node in nodes
        if node.get("partitions")
    ]
    lines = [f"Cluster status of node {overview['node']} ...", "Basics", ""]
    lines.append(f"Cluster name: {overview.get('cluster_name')}")
    lines += _section("Disk Nodes", names)
    lines += _section("Running Nodes", running)
    lines += _section("Versions", _versions(nodes))
    lines += _section("Alarms", _alarms(nodes))
    lines += _section("Network Partitions", partitions)
    lines += _section("Listeners", _listeners(nodes))
    lines += _section("JetStream", _jetstream(health))
    return "\n".join(lines)


def _health(client: ClientLike) -> dict[str, Any]:
    """The cluster check's answer, a 503 included (the error carries no body here:
    the sections then say what the overview says)."""
    try:
        found: dict[str, Any] = client.call("GET", "/health/checks/cluster")
    except CtlError as failed:
        return {"cluster": True, "connected": False, "reason": str(failed)}
    return found


def run(args: argparse.Namespace, client: ClientLike) -> str | None:
    command = args.ctl_command
    if command in ("cluster_status", "cluster-status"):
        return cluster_status(client, args.format)
    if command in ("forget_cluster_node", "forget-cluster-node"):
        client.call("DELETE", f"/nodes/{quote(args.node, safe='')}")
        return f"forgot node {args.node}"
    return None


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser(
        "cluster_status",
        aliases=["cluster-status"],
        help="the cluster's nodes, running nodes, versions, alarms, JetStream",
    )
    status.add_argument("--format", choices=["text", "json"], default="text")
    forget = sub.add_parser(
        "forget_cluster_node",
        aliases=["forget-cluster-node"],
        help="drop a node that is not running from the cluster's list",
    )
    forget.add_argument("node")
