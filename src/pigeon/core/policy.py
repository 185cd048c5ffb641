"""Policies and operator policies: optional queue and exchange settings applied by name.

RabbitMQ's model (``rabbit_policy``, ``rabbit_policies``), kept here in one
place for AMQP, the HTTP API, definitions and the embedded API. A policy's
definition reaches the core already converted to :class:`PolicyOptions` (by
``pigeon.operations.arguments``, which also validates it); the core keeps the
definition only to report it back, and applies the precedence rules:

- A policy has a vhost, a name, a regular expression matched (unanchored)
  against queue or exchange names, an ``apply-to`` (``all``, ``queues``,
  ``exchanges``; Pigeon also takes ``classic_queues``, ``quorum_queues`` and
  ``streams``, as RabbitMQ does from 3.12), a priority and a definition.
- At most one policy and one operator policy apply to an object: the matching
  one of highest priority. RabbitMQ leaves ties to its table's order; Pigeon
  takes the first by name, so the choice is at least stable.
- Where a policy and its operator policy both set a value, numeric limits take
  the smaller value and the others the operator's (``merge_policy_value``).
- Where that value and a queue's declared option disagree, numeric limits
  take the smaller and the others (dead-lettering, overflow) the declared one
  (``rabbit_amqqueue_process``'s table, the same for quorum queues, except
  that these prefer the policy's overflow, expiry and dead-letter strategy);
  an exchange's declared alternate exchange beats the policy's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pigeon.core.options import QUORUM, ExchangeOptions, PolicyOptions, QueueOptions

QUEUE_TYPES = {"classic": "classic_queues", "quorum": "quorum_queues", "stream": "streams"}
APPLY_TO = ("all", "queues", "exchanges", *QUEUE_TYPES.values())

# Options whose merged value is the smaller one (against an operator policy, and against
# a declared option); the others take the operator policy's value, then the declared one.
NUMERIC = frozenset({"message_ttl", "expires", "max_length", "max_length_bytes", "delivery_limit"})
# What a quorum queue takes from a policy over its declared option (rabbit_quorum_queue
# in 3.10: ``overflow`` and ``expires`` "prefer the policy", and the new
# ``dead-letter-strategy``); a classic queue keeps its own, or the smaller limit.
QUORUM_POLICY_WINS = frozenset({"overflow", "expires", "dead_letter_strategy"})
# The policy options a queue takes (alternate_exchange is an exchange's).
_QUEUE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(PolicyOptions)
    if f.name in {q.name for q in dataclasses.fields(QueueOptions)}
)


@dataclass(frozen=True, slots=True)
class Policy:
    vhost: str
    name: str
    pattern: str
    definition: Mapping[str, Any]  # as given: reported back and stored
    priority: int | float = 0
    apply_to: str = "all"
    options: PolicyOptions = field(default_factory=PolicyOptions)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def matches(self, kind: str, name: str, queue_type: str = "classic") -> bool:
        """``kind``: "queue" or "exchange"."""
        if kind == "exchange":
            applies = self.apply_to in ("all", "exchanges")
        else:
            applies = self.apply_to in ("all", "queues", QUEUE_TYPES.get(queue_type)) and (
                queue_type != QUORUM or self.options.fits_quorum
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


def merged(policy: Policy | None, operator: Policy | None) -> PolicyOptions:
    """What a policy and an operator policy set together (``merge_policy_value``)."""
    mine = policy.options if policy is not None else PolicyOptions()
    if operator is None:
        return mine
    theirs = operator.options
    changes: dict[str, Any] = {}
    for name in _QUEUE_FIELDS:
        value, forced = getattr(mine, name), getattr(theirs, name)
        if forced is not None:
            changes[name] = forced if value is None or name not in NUMERIC else min(value, forced)
    return dataclasses.replace(mine, **changes) if changes else mine


def queue_options(
    declared: QueueOptions, policy: Policy | None, operator: Policy | None
) -> QueueOptions:
    """A queue's effective options: its declared ones with the policies laid over them."""
    if policy is None and operator is None:
        return declared
    policy_wins = QUORUM_POLICY_WINS if declared.type == QUORUM else frozenset()
    options = merged(policy, operator)
    changes: dict[str, Any] = {}
    for name in _QUEUE_FIELDS:
        value = getattr(options, name)
        if value is None:
            continue
        if name in declared.explicit and name not in policy_wins:
            if name not in NUMERIC:
                continue  # the declared option wins
            value = min(value, getattr(declared, name))
        changes[name] = value
    return dataclasses.replace(declared, **changes) if changes else declared


def alternate_exchange(declared: ExchangeOptions, policy: Policy | None) -> str | None:
    """An exchange's effective alternate exchange (``rabbit_policy:get_arg``)."""
    if declared.alternate_exchange is not None or policy is None:
        return declared.alternate_exchange
    return policy.options.alternate_exchange
