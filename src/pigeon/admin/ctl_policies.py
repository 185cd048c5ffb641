"""``pigeon ctl`` verbs for policies, limits and parameters, after rabbitmqctl's.

``set-policy NAME PATTERN DEFINITION [--priority N] [--apply-to queues]`` and
the rest take JSON where rabbitmqctl does (a definition, a limits object, a
parameter's value) and act in ``--vhost``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

# kind -> (path, columns) for the list verbs; the paths take the vhost where they can.
LISTS: dict[str, tuple[str, list[str]]] = {
    "policies": (
        "/policies/{vhost}",
        ["vhost", "name", "pattern", "apply-to", "definition", "priority"],
    ),
    "operator-policies": (
        "/operator-policies/{vhost}",
        ["vhost", "name", "pattern", "apply-to", "definition", "priority"],
    ),
    "vhost-limits": ("/vhost-limits/{vhost}", ["vhost", "value"]),
    "user-limits": ("/user-limits", ["user", "value"]),
    "parameters": ("/parameters", ["component", "vhost", "name", "value"]),
    "global-parameters": ("/global-parameters", ["name", "value"]),
}


class ClientLike(Protocol):
    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any: ...


class CtlError(Exception):
    """A failure to report in one line (every ``pigeon ctl`` verb raises it)."""


def _q(name: str) -> str:
    return quote(name, safe="")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as problem:
        raise CtlError(f"{what} is not valid JSON: {problem}") from None


def _object(text: str, what: str) -> dict[str, Any]:
    value = _json(text, what)
    if not isinstance(value, dict):
        raise CtlError(f"{what} must be a JSON object")
    return value


def _policy_kind(args: argparse.Namespace) -> str:
    return "operator-policies" if "operator" in args.ctl_command else "policies"


def _set_policy(args: argparse.Namespace, client: ClientLike) -> str:
    kind = _policy_kind(args)
    body = {
        "pattern": args.pattern,
        "definition": _object(args.definition, "definition"),
        "priority": args.priority,
        "apply-to": args.apply_to,
    }
    client.call("PUT", f"/{kind}/{_q(args.vhost)}/{_q(args.name)}", body)
    return f"set {args.ctl_command[4:]} {args.name} in vhost {args.vhost}"


def _clear_policy(args: argparse.Namespace, client: ClientLike) -> str:
    client.call("DELETE", f"/{_policy_kind(args)}/{_q(args.vhost)}/{_q(args.name)}")
    return f"cleared {args.ctl_command[6:]} {args.name} in vhost {args.vhost}"


def _set_limits(client: ClientLike, base: str, limits: dict[str, Any]) -> None:
    """Replace the limits at ``base`` with ``limits``, as rabbitmqctl does."""
    for name in _current(client, base):
        if name not in limits:
            client.call("DELETE", f"{base}/{_q(name)}")
    for name, value in limits.items():
        client.call("PUT", f"{base}/{_q(name)}", {"value": value})


def _vhost_limits(args: argparse.Namespace, client: ClientLike) -> str:
    clear = args.ctl_command == "clear-vhost-limits"
    _set_limits(
        client, f"/vhost-limits/{_q(args.vhost)}", {} if clear else _object(args.limits, "limits")
    )
    return f"{'cleared' if clear else 'set'} limits of vhost {args.vhost}"


def _user_limits(args: argparse.Namespace, client: ClientLike) -> str:
    base = f"/user-limits/{_q(args.user_name)}"
    if args.ctl_command == "set-user-limits":
        _set_limits(client, base, _object(args.limits, "limits"))
        return f"set limits of user {args.user_name}"
    kept = (
        {}
        if args.limit == "all"
        else {k: v for k, v in _current(client, base).items() if k != args.limit}
    )
    _set_limits(client, base, kept)
    return f"cleared limits of user {args.user_name}"


def _set_or_clear(args: argparse.Namespace, client: ClientLike, path: str, what: str) -> str:
    """``set-*`` PUTs ``{"value": ...}`` at ``path``, ``clear-*`` DELETEs it."""
    if args.ctl_command.startswith("set-"):
        client.call("PUT", path, {"value": _json(args.value, "value")})
        return f"set {what}"
    client.call("DELETE", path)
    return f"cleared {what}"


def _parameter(args: argparse.Namespace, client: ClientLike) -> str:
    path = f"/parameters/{_q(args.component)}/{_q(args.vhost)}/{_q(args.name)}"
    return _set_or_clear(
        args, client, path, f"parameter {args.name} of {args.component} in vhost {args.vhost}"
    )


def _global_parameter(args: argparse.Namespace, client: ClientLike) -> str:
    path = f"/global-parameters/{_q(args.name)}"
    return _set_or_clear(args, client, path, f"global parameter {args.name}")


VERBS: dict[str, Callable[[argparse.Namespace, ClientLike], str]] = {
    "set-policy": _set_policy,
    "set-operator-policy": _set_policy,
    "clear-policy": _clear_policy,
    "clear-operator-policy": _clear_policy,
    "set-vhost-limits": _vhost_limits,
    "clear-vhost-limits": _vhost_limits,
    "set-user-limits": _user_limits,
    "clear-user-limits": _user_limits,
    "set-parameter": _parameter,
    "clear-parameter": _parameter,
    "set-global-parameter": _global_parameter,
    "clear-global-parameter": _global_parameter,
}


def run(args: argparse.Namespace, client: ClientLike) -> str | None:
    """Run one of this module's verbs; None if the command is not one of them."""
    verb = VERBS.get(args.ctl_command)
    return None if verb is None else verb(args, client)


def _current(client: ClientLike, base: str) -> dict[str, Any]:
    rows = client.call("GET", base) or []
    return dict(rows[0]["value"]) if rows else {}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb, what in (("set-policy", "a policy"), ("set-operator-policy", "an operator policy")):
        policy = sub.add_parser(verb, help=f"add or change {what} in --vhost")
        policy.add_argument("name")
        policy.add_argument("pattern", help="regular expression on queue/exchange names")
        policy.add_argument("definition", help="JSON, e.g. '{\"message-ttl\": 60000}'")
        policy.add_argument("--priority", type=int, default=0)
        policy.add_argument(
            "--apply-to",
            default="all",
            choices=["all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"],
        )
    for verb in ("clear-policy", "clear-operator-policy"):
        sub.add_parser(
            verb, help=f"remove a{'n operator' if 'operator' in verb else ''} policy from --vhost"
        ).add_argument("name")
    sub.add_parser("set-vhost-limits", help="replace --vhost's limits").add_argument(
        "limits", help='JSON, e.g. \'{"max-connections": 64, "max-queues": 1000}\''
    )
    sub.add_parser("clear-vhost-limits", help="remove --vhost's limits")
    user = sub.add_parser("set-user-limits", help="replace a user's limits")
    user.add_argument("user_name", metavar="user")
    user.add_argument("limits", help="JSON, e.g. '{\"max-channels\": 100}'")
    clear = sub.add_parser("clear-user-limits", help="remove one or all of a user's limits")
    clear.add_argument("user_name", metavar="user")
    clear.add_argument("limit", help="max-connections, max-channels or all")
    parameter = sub.add_parser("set-parameter", help="set a runtime parameter in --vhost")
    clear_parameter = sub.add_parser("clear-parameter", help="clear a runtime parameter")
    for parser in (parameter, clear_parameter):
        parser.add_argument("component")
        parser.add_argument("name")
    parameter.add_argument("value", help="JSON")
    global_parameter = sub.add_parser("set-global-parameter", help="set a global parameter")
    global_parameter.add_argument("name")
    global_parameter.add_argument("value", help="JSON")
    sub.add_parser("clear-global-parameter", help="clear a global parameter").add_argument("name")
    for kind in LISTS:
        listing = sub.add_parser(f"list-{kind}", help=f"list {kind.replace('-', ' ')}")
        listing.add_argument("--format", choices=["table", "json"], default="table")
