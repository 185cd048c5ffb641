"""Policies and operator policies: optional queue and exchange settings applied by name.

RabbitMQ's model (``rabbit_policy``, ``rabbit_policies``), kept here in one
place for AMQP, the HTTP API, definitions and the embedded API:

- A policy has a vhost, a name, a regular expression matched (unanchored)
  against queue or exchange names, an ``apply-to`` (``all``, ``queues``,
  ``exchanges``; Pigeon also takes ``classic_queues``, ``quorum_queues`` and
  ``streams``, as RabbitMQ does from 3.12), a priority and a definition.
- At most one policy and one operator policy apply to an object: the matching
  one of highest priority. RabbitMQ leaves ties to its table's order; Pigeon
  takes the first by name, so the choice is at least stable.
- Where a policy and its operator policy both set a key, numeric limits take
  the smaller value and ``overflow``/``queue-version`` the operator's
  (``merge_policy_value``).
- Where that value and a queue argument (``x-...``) disagree, numeric limits
  take the smaller and the others (dead-lettering, overflow, mode) the
  argument's (``rabbit_amqqueue_process``'s table, the same for quorum
  queues); an exchange's ``alternate-exchange`` argument beats the policy's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pigeon.core.arguments import Overflow, QueueArguments
from pigeon.core.binding import erlang_term
from pigeon.errors import PreconditionFailed

QUEUE_TYPES = {"classic": "classic_queues", "quorum": "quorum_queues", "stream": "streams"}
APPLY_TO = ("all", "queues", "exchanges", *QUEUE_TYPES.values())

# Keys whose merged value is the smaller one (against an operator policy, and against a
# queue argument); the others take the operator policy's value, then the argument's.
NUMERIC = (
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "delivery-limit",
    "max-in-memory-length",
    "max-in-memory-bytes",
)
# Policy key -> QueueArguments field, for the keys that change what a queue does.
QUEUE_FIELDS = {
    "message-ttl": "message_ttl",
    "expires": "expires",
    "max-length": "max_length",
    "max-length-bytes": "max_length_bytes",
    "overflow": "overflow",
    "dead-letter-exchange": "dead_letter_exchange",
    "dead-letter-routing-key": "dead_letter_routing_key",
    "delivery-limit": "delivery_limit",
    "dead-letter-strategy": "dead_letter_strategy",
}
# Keys a quorum queue cannot take: a policy that has any of them skips quorum queues
# altogether, and the next matching policy applies (``is_policy_applicable``, 3.10).
QUORUM_UNSUPPORTED = frozenset(
    {
        "max-priority",
        "queue-mode",
        "single-active-consumer",
        "ha-mode",
        "ha-params",
        "ha-sync-mode",
        "ha-promote-on-shutdown",
        "ha-promote-on-failure",
        "queue-master-locator",
    }
)
# Where a quorum queue takes the policy's value over its argument (rabbit_quorum_queue
# in 3.10: ``overflow`` and ``expires`` "prefer the policy", and the new
# ``dead-letter-strategy``); a classic queue takes the argument's, or the smaller limit.
QUORUM_POLICY_WINS = frozenset({"overflow", "expires", "dead-letter-strategy"})
OPERATOR_KEYS = frozenset(
    {
        "expires",
        "message-ttl",
        "max-length",
        "max-length-bytes",
        "max-in-memory-length",
        "max-in-memory-bytes",
        "delivery-limit",
    }
)


def _integer(minimum: int, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"{term(value)} is not a valid {what}"

    return check


def _text(what: str) -> Callable[[Any], str | None]:
    return lambda value: None if isinstance(value, str) else f"{term(value)} is not a valid {what}"


def _one_of(choices: Iterable[object], what: str) -> Callable[[Any], str | None]:
    allowed = tuple(choices)
    return lambda value: (
        None
        if value in allowed and not isinstance(value, bool)
        else f"{term(value)} is not a valid {what}"
    )


def _anything(value: Any) -> str | None:
    return None


# rabbit_policies' validators and texts. The ha-*, federation and locator keys are
# accepted so that definitions from a RabbitMQ cluster import; on one node they do nothing.
VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "alternate-exchange": _text("alternate exchange name"),
    "dead-letter-exchange": _text("dead letter exchange name"),
    "dead-letter-routing-key": _text("dead letter routing key"),
    "message-ttl": _integer(0, "message TTL"),
    "expires": _integer(1, "queue expiry"),
    "max-length": _integer(0, "maximum length"),
    "max-length-bytes": _integer(0, "maximum length in bytes"),
    "max-in-memory-length": _integer(0, "maximum memory length"),
    "max-in-memory-bytes": _integer(0, "maximum memory in bytes"),
    "delivery-limit": _integer(0, "delivery limit"),
    "overflow": _one_of([o.value for o in Overflow], "overflow value"),
    "queue-mode": _one_of(["default", "lazy"], "queue-mode value"),
    "queue-version": _one_of([1, 2], "queue-version value"),
    "dead-letter-strategy": _one_of(["at-most-once", "at-least-once"], "dead letter strategy"),
    "queue-master-locator": _text("queue master locator"),
    "ha-mode": _one_of(["all", "exactly", "nodes"], "ha-mode value"),
    "ha-params": _anything,
    "ha-sync-mode": _one_of(["manual", "automatic"], "ha-sync-mode value"),
    "ha-sync-batch-size": _integer(1, "ha-sync-batch-size value"),
    "ha-promote-on-shutdown": _one_of(["when-synced", "always"], "ha-promote-on-shutdown value"),
    "ha-promote-on-failure": _one_of(["when-synced", "always"], "ha-promote-on-failure value"),
    "federation-upstream": _text("federation upstream name"),
    "federation-upstream-set": _text("federation upstream set name"),
}


def term(value: Any) -> str:
    """A JSON value as Erlang prints it in RabbitMQ's validation texts."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(term(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ",".join(f"{{{term(k)},{term(v)}}}" for k, v in value.items()) + "]"
    if value is None:
        return "null"
    return erlang_term(value)


def invalid(problem: str) -> PreconditionFailed:
    return PreconditionFailed(f"Validation failed\n\n{problem}\n")


@dataclass(frozen=True, slots=True)
class Policy:
    vhost: str
    name: str
    pattern: str
    definition: Mapping[str, Any]
    priority: int | float = 0
    apply_to: str = "all"
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    @classmethod
    def parse(
        cls, vhost: str, name: str, data: Mapping[str, Any], *, operator: bool = False
    ) -> Policy:
        """A policy from its API/definitions JSON, or PreconditionFailed with RabbitMQ's text."""
        for key in ("pattern", "definition"):
            if key not in data:
                raise PreconditionFailed(f"[{{key_missing,{key}}}]")
        priority = data.get("priority", 0)
        if priority is None:
            priority = 0
        if isinstance(priority, bool) or not isinstance(priority, int | float):
            raise invalid(f"priority should be a number, actually was {term(priority)}")
        pattern = data["pattern"]
        if not isinstance(pattern, str):
            raise invalid(f"pattern should be a string, actually was {term(pattern)}")
        try:
            re.compile(pattern)
        except re.error as problem:
            raise invalid(
                "pattern should be regular expression but is invalid: "
                f'{{"{problem.msg}",{problem.pos or 0}}}'
            ) from None
        apply_to = data.get("apply-to") or "all"
        if apply_to not in APPLY_TO:
            raise invalid(
                f"apply-to '{apply_to}' unrecognised; should be 'queues', 'exchanges' or 'all'"
            )
        definition = data["definition"]
        validate_definition(definition, operator=operator)
        return cls(vhost, name, pattern, dict(definition), priority, apply_to)

    def matches(self, kind: str, name: str, queue_type: str = "classic") -> bool:
        """``kind``: "queue" or "exchange"."""
        if kind == "exchange":
            applies = self.apply_to in ("all", "exchanges")
        else:
            applies = self.apply_to in ("all", "queues", QUEUE_TYPES.get(queue_type)) and (
                queue_type != "quorum" or QUORUM_UNSUPPORTED.isdisjoint(self.definition)
            )
        return applies and self._regex.search(name) is not None

    def json(self) -> dict[str, Any]:
        """RabbitMQ's shape in the API and in definitions."""
        return {
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to,
            "definition": dict(self.definition),
            "priority": self.priority,
        }

    def value(self) -> dict[str, Any]:
        """The runtime parameter's value (``/api/parameters/policy/...``)."""
        return {
            "pattern": self.pattern,
            "definition": dict(self.definition),
            "priority": self.priority,
            "apply-to": self.apply_to,
        }


def validate_definition(definition: Any, *, operator: bool = False) -> None:
    if not isinstance(definition, Mapping):
        raise invalid(f"definition must be a dictionary: {term(definition)}")
    if not definition:
        raise invalid("no policy provided")
    allowed = OPERATOR_KEYS if operator else VALIDATORS.keys()
    unknown = [(k, v) for k, v in definition.items() if k not in allowed]
    for key, value in definition.items():
        if key in allowed and (problem := VALIDATORS[key](value)) is not None:
            raise invalid(problem)
    if unknown:
        shown = ",".join(f"{{{term(k)},{term(v)}}}" for k, v in unknown)
        raise invalid(f"[{shown}] are not recognised policy settings")


def best(
    policies: Iterable[Policy], kind: str, name: str, queue_type: str = "classic"
) -> Policy | None:
    """The matching policy of highest priority (the first by name among equals)."""
    found: Policy | None = None
    for policy in policies:
        if not policy.matches(kind, name, queue_type):
            continue
        if (
            found is None
            or policy.priority > found.priority
            or (policy.priority == found.priority and policy.name < found.name)
        ):
            found = policy
    return found


def merge_value(key: str, value: Any, operator_value: Any) -> Any:
    """A key both a policy and an operator policy set (``merge_policy_value``)."""
    if key in NUMERIC:
        return min(value, operator_value)
    return operator_value


def effective_definition(policy: Policy | None, operator: Policy | None) -> dict[str, Any]:
    """What the management API shows as ``effective_policy_definition``."""
    merged = dict(policy.definition) if policy is not None else {}
    for key, value in (operator.definition if operator is not None else {}).items():
        merged[key] = merge_value(key, merged[key], value) if key in merged else value
    return dict(sorted(merged.items()))


def queue_options(
    declared: QueueArguments,
    arguments: Mapping[str, Any],
    policy: Policy | None,
    operator: Policy | None,
    queue_type: str = "classic",
) -> QueueArguments:
    """A queue's effective options: its arguments with the policies laid over them."""
    if policy is None and operator is None:
        return declared
    policy_wins = QUORUM_POLICY_WINS if queue_type == "quorum" else frozenset()
    changes: dict[str, Any] = {}
    for key, value in effective_definition(policy, operator).items():
        field_name = QUEUE_FIELDS.get(key)
        if field_name is None or field_name not in _OPTION_FIELDS:
            continue
        if f"x-{key}" in arguments and key not in policy_wins:
            if key not in NUMERIC:
                continue  # the argument wins
            value = min(value, getattr(declared, field_name))
        changes[field_name] = Overflow(value) if key == "overflow" else value
    return dataclasses.replace(declared, **changes) if changes else declared


# The options QueueArguments has (dead_letter_strategy comes with quorum queues).
_OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(QueueArguments))


def alternate_exchange(arguments: Mapping[str, Any], policy: Policy | None) -> str | None:
    """An exchange's effective alternate exchange (``rabbit_policy:get_arg``)."""
    value = arguments.get("alternate-exchange")
    if value is None and policy is not None:
        value = policy.definition.get("alternate-exchange")
    return value if isinstance(value, str) else None
