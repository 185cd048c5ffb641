"""``pigeon ctl``: the management HTTP API from a terminal.

Talks to any RabbitMQ-compatible management API (Pigeon's or RabbitMQ's) with
the standard library only. Lists print as aligned tables or ``--format json``;
every failure is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pigeon.admin import ctl_cluster, ctl_policies
from pigeon.admin.ctl_policies import CtlError

LISTS: dict[str, tuple[str, list[str]]] = {
    "queues": (
        "/queues",
        ["vhost", "name", "type", "messages_ready", "messages_unacknowledged", "consumers"],
    ),
    "exchanges": ("/exchanges", ["vhost", "name", "type", "durable"]),
    "bindings": (
        "/bindings",
        ["vhost", "source", "destination", "destination_type", "routing_key"],
    ),
    "connections": (
        "/connections",
        ["name", "protocol", "client_id", "user", "vhost", "channels"],
    ),
    # rabbitmqctl list_mqtt_connections' items (its default columns are the first two).
    "mqtt-connections": (
        "/connections",
        ["client_id", "conn_name", "protocol", "user", "vhost", "keepalive", "clean_sess"],
    ),
    "mqtt-sessions": (
        "/mqtt/sessions",
        [
            "vhost",
            "client_id",
            "connected",
            "protocol",
            "subscriptions",
            "messages_queued",
            "session_expiry_interval",
        ],
    ),
    "channels": ("/channels", ["name", "user", "consumer_count", "messages_unacknowledged"]),
    "consumers": ("/consumers", ["queue.vhost", "queue.name", "consumer_tag", "prefetch_count"]),
    "users": ("/users", ["name", "tags"]),
    "vhosts": ("/vhosts", ["name", "messages"]),
}
# Columns read from elsewhere in a row: an MQTT client id is in the connection's client
# properties (where RabbitMQ's API has it too), rabbitmqctl's conn_name is its name.
COLUMN_PATHS = {"client_id": "client_properties.client_id", "conn_name": "name"}


def _mqtt_only(kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if kind != "mqtt-connections":
        return rows
    return [r for r in rows if "MQTT" in str(r.get("protocol", ""))]  # Web MQTT too


class Client:
    def __init__(self, url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.base = url.rstrip("/") + "/api"
        self.token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        what: str = "",
    ) -> Any:
        """The JSON answer; CtlError in one line, naming ``what`` was asked for on a 404."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Basic {self.token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as failed:
            said = _reason(failed.read()) or failed.reason
            if failed.code == 404 and what:
                said = f"{what} not found ({said})"
            raise CtlError(f"{failed.code} {said}") from None
        except (urllib.error.URLError, OSError) as failed:
            reason = getattr(failed, "reason", failed)
            raise CtlError(f"cannot reach {self.base}: {reason}") from None
        return json.loads(raw) if raw else None


def _reason(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    return str(data.get("reason", "")) if isinstance(data, dict) else ""


def _dig(row: dict[str, Any], path: str) -> Any:
    if path not in row and path in COLUMN_PATHS:
        path = COLUMN_PATHS[path]
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(_dig(row, c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _q(name: str) -> str:
    return quote(name, safe="")


def run(args: argparse.Namespace, client: Client) -> str:
    command = args.ctl_command
    vhost = _q(args.vhost)
    in_vhost = f"in vhost '{args.vhost}'"
    if command == "status":
        overview = client.call("GET", "/overview")
        totals, queued = overview["object_totals"], overview["queue_totals"]
        return "\n".join(
            [
                f"node         {overview['node']} ({overview['product_name']} "
                f"{overview['product_version']})",
                f"connections  {totals['connections']}   channels {totals['channels']}   "
                f"consumers {totals['consumers']}",
                f"queues       {totals['queues']}   exchanges {totals['exchanges']}",
                f"messages     {queued['messages']} (ready {queued['messages_ready']}, "
                f"unacked {queued['messages_unacknowledged']})",
            ]
        )
    if command == "list" or command.startswith("list-"):
        kind = args.kind if command == "list" else command[len("list-") :]
        path, columns = {**LISTS, **ctl_policies.LISTS}[kind]
        rows = _mqtt_only(kind, client.call("GET", path.replace("{vhost}", vhost)))
        columns = getattr(args, "columns", None) or columns
        return json.dumps(rows, indent=2) if args.format == "json" else table(rows, columns)
    if (done := ctl_policies.run(args, client)) is not None:
        return done
    if (done := ctl_cluster.run(args, client)) is not None:
        return done
    if command == "purge":
        client.call(
            "DELETE",
            f"/queues/{vhost}/{_q(args.queue)}/contents",
            what=f"queue '{args.queue}' {in_vhost}",
        )
        return f"purged queue {args.queue}"
    if command == "delete":
        kind = "queues" if args.kind == "queue" else "exchanges"
        client.call(
            "DELETE",
            f"/{kind}/{vhost}/{_q(args.name)}",
            what=f"{args.kind} '{args.name}' {in_vhost}",
        )
        return f"deleted {args.kind} {args.name}"
    if command == "close-connection":
        client.call(
            "DELETE",
            f"/connections/{_q(args.name)}",
            headers={"X-Reason": args.reason} if args.reason else None,
            what=f"connection '{args.name}'",
        )
        return f"closed connection {args.name}"
    if command == "export":
        data = client.call("GET", "/definitions" + ("?for=rabbitmq" if args.target else ""))
        if left_out := data.get("pigeon_users_left_out"):
            print(
                f"pigeon ctl: left out users RabbitMQ could not log in (only a scrypt hash; "
                f'set their passwords with definitions_password_hashing = "rabbitmq"): '
                f"{', '.join(left_out)}",
                file=sys.stderr,
            )
        text = json.dumps(data, indent=2)
        if args.file == "-":
            return text
        Path(args.file).write_text(text + "\n")
        return f"exported definitions to {args.file}"
    if command == "import":
        try:
            data = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as problem:
            raise CtlError(f"cannot read {args.file}: {problem}") from None
        client.call("POST", "/definitions", data)
        return f"imported definitions from {args.file}"
    if command == "add-user":
        client.call(
            "PUT",
            f"/users/{_q(args.name)}",
            {"password": args.new_password, "tags": args.tags or ""},
        )
        return f"added user {args.name}"
    assert command == "set-permissions"
    client.call(
        "PUT",
        f"/permissions/{vhost}/{_q(args.grantee)}",
        {"configure": args.configure, "write": args.write, "read": args.read},
        what=f"user '{args.grantee}' or vhost '{args.vhost}'",
    )
    return f"set permissions of {args.grantee} in vhost {args.vhost}"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ctl`` and its subcommands to the ``pigeon`` command's parser."""
    ctl = commands.add_parser("ctl", help="manage a running broker over its HTTP API")
    ctl.add_argument(
        "--url", default=os.environ.get("PIGEON_MANAGEMENT_URL", "http://127.0.0.1:15672")
    )
    ctl.add_argument("--user", default=os.environ.get("PIGEON_USER", "guest"))
    ctl.add_argument("--password", default=os.environ.get("PIGEON_PASSWORD", "guest"))
    ctl.add_argument("--vhost", default="/")
    sub = ctl.add_subparsers(dest="ctl_command", metavar="command")
    sub.add_parser("status", help="node, object and message totals")
    listing = sub.add_parser("list", help="list objects")
    listing.add_argument("kind", choices=sorted({*LISTS, *ctl_policies.LISTS}))
    listing.add_argument("--format", choices=["table", "json"], default="table")
    mqtt = sub.add_parser(
        "list-mqtt-connections", help="list MQTT connections (as rabbitmqctl list_mqtt_connections)"
    )
    mqtt.add_argument("columns", nargs="*", metavar="column")
    mqtt.add_argument("--format", choices=["table", "json"], default="table")
    sub.add_parser("purge", help="drop a queue's ready messages").add_argument("queue")
    delete = sub.add_parser("delete", help="delete a queue or exchange")
    delete.add_argument("kind", choices=["queue", "exchange"])
    delete.add_argument("name")
    close = sub.add_parser("close-connection", help="close a client connection")
    close.add_argument("name")
    close.add_argument("--reason", default="")
    export = sub.add_parser("export", help="write definitions (- for stdout)")
    export.add_argument("file")
    export.add_argument(
        "--for",
        dest="target",
        choices=["rabbitmq"],
        help="leave out (and name) users RabbitMQ could not log in",
    )
    sub.add_parser("import", help="load definitions").add_argument("file")
    user = sub.add_parser("add-user", help="add or update a user")
    user.add_argument("name")
    user.add_argument("new_password", metavar="password")
    user.add_argument("--tags", default="", help="comma-separated, e.g. administrator")
    perms = sub.add_parser("set-permissions", help="set a user's permissions in --vhost")
    perms.add_argument("grantee", metavar="user")
    for kind in ("configure", "write", "read"):  # all three, as rabbitmqctl's: no silent .*
        perms.add_argument(
            f"--{kind}",
            required=True,
            metavar="REGEX",
            help=f"resources the user may {kind} ('.*' for all, '' for none)",
        )
    ctl_policies.add_parsers(sub)
    ctl_cluster.add_parsers(sub)
    ctl.set_defaults(ctl_help=ctl.format_help)


def main(args: argparse.Namespace) -> int:
    """Run a parsed ``pigeon ctl`` command; the exit status."""
    if args.ctl_command is None:  # ``pigeon ctl`` alone: what it can do, as argparse exits
        print(args.ctl_help(), file=sys.stderr, end="")
        print("pigeon ctl: error: a command is required", file=sys.stderr)
        return 2
    try:
        print(run(args, Client(args.url, args.user, args.password)))
    except CtlError as error:
        print(f"pigeon ctl: {error}", file=sys.stderr)
        return 1
    return 0


def standalone(argv: Sequence[str] | None = None) -> int:
    """``python -m pigeon.admin.ctl``: the same commands without the ``pigeon`` wrapper."""
    parser = argparse.ArgumentParser(prog="pigeon")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(standalone())
