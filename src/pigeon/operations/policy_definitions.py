"""RabbitMQ's policy definitions and limits: validated, and turned into typed options.

A policy's ``definition`` (``{"max-length": 10, "dead-letter-exchange": "dlx"}``) is
converted once, when the policy is set, into :class:`~pigeon.core.options.PolicyOptions`;
the core applies those with RabbitMQ's precedence rules (``core/policy.py``). The
texts of refusals are RabbitMQ 3.10's (``Validation failed ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pigeon.core.options import (
    Overflow,
    PolicyOptions,
)
from pigeon.core.policy import APPLY_TO, Policy
from pigeon.errors import PreconditionFailed
from pigeon.operations.arguments import DEAD_LETTER_STRATEGIES
from pigeon.operations.terms import erlang_term

# Keys whose merged value (policy and operator policy) is the smaller one; the only ones
# an operator policy may set.
# fmt: off
OPERATOR_KEYS = frozenset(
    (
        "message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit",
        "max-in-memory-length", "max-in-memory-bytes",
    )
)
# fmt: on
# Keys a quorum queue cannot take: a policy that has any of them skips quorum queues
# altogether, and the next matching policy applies (``is_policy_applicable``, 3.10).
# fmt: off
QUORUM_UNSUPPORTED = frozenset(
    (
        "max-priority", "queue-mode", "single-active-consumer", "ha-mode", "ha-params",
        "ha-sync-mode", "ha-promote-on-shutdown", "ha-promote-on-failure",
        "queue-master-locator",
    )
)
# fmt: on
# The keys that set a PolicyOptions field (``max-length`` -> ``max_length``).
# fmt: off
_POLICY_FIELDS = {
    key: key.replace("-", "_")
    for key in (
        "message-ttl", "expires", "max-length", "max-length-bytes", "overflow",
        "dead-letter-exchange", "dead-letter-routing-key", "delivery-limit",
        "dead-letter-strategy", "alternate-exchange",
    )
}
# fmt: on


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


def _at_least(minimum: int, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"{term(value)} is not a valid {what}"

    return check


def _text(what: str) -> Callable[[Any], str | None]:
    return lambda value: None if isinstance(value, str) else f"{term(value)} is not a valid {what}"


def _choice(choices: Iterable[object], what: str) -> Callable[[Any], str | None]:
    allowed = tuple(choices)
    return lambda value: (
        None
        if value in allowed and not isinstance(value, bool)
        else f"{term(value)} is not a valid {what}"
    )


# rabbit_policies' validators and texts. The ha-*, federation and locator keys are
# accepted so that definitions from a RabbitMQ cluster import; on one node they do nothing.
VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "alternate-exchange": _text("alternate exchange name"),
    "dead-letter-exchange": _text("dead letter exchange name"),
    "dead-letter-routing-key": _text("dead letter routing key"),
    "message-ttl": _at_least(0, "message TTL"),
    "expires": _at_least(1, "queue expiry"),
    "max-length": _at_least(0, "maximum length"),
    "max-length-bytes": _at_least(0, "maximum length in bytes"),
    "max-in-memory-length": _at_least(0, "maximum memory length"),
    "max-in-memory-bytes": _at_least(0, "maximum memory in bytes"),
    "delivery-limit": _at_least(0, "delivery limit"),
    "overflow": _choice([o.value for o in Overflow], "overflow value"),
    "queue-mode": _choice(["default", "lazy"], "queue-mode value"),
    "queue-version": _choice([1, 2], "queue-version value"),
    "dead-letter-strategy": _choice(DEAD_LETTER_STRATEGIES, "dead letter strategy"),
    "queue-master-locator": _text("queue master locator"),
    "ha-mode": _choice(["all", "exactly", "nodes"], "ha-mode value"),
    "ha-params": lambda value: None,
    "ha-sync-mode": _choice(["manual", "automatic"], "ha-sync-mode value"),
    "ha-sync-batch-size": _at_least(1, "ha-sync-batch-size value"),
    "ha-promote-on-shutdown": _choice(["when-synced", "always"], "ha-promote-on-shutdown value"),
    "ha-promote-on-failure": _choice(["when-synced", "always"], "ha-promote-on-failure value"),
    "federation-upstream": _text("federation upstream name"),
    "federation-upstream-set": _text("federation upstream set name"),
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


def policy_options(definition: Mapping[str, Any]) -> PolicyOptions:
    """What a (validated) definition sets."""
    values = {f: definition[k] for k, f in _POLICY_FIELDS.items() if k in definition}
    if "overflow" in values:
        values["overflow"] = Overflow(values["overflow"])
    return PolicyOptions(**values, fits_quorum=QUORUM_UNSUPPORTED.isdisjoint(definition))


def parse_policy(
    vhost: str, name: str, data: Mapping[str, Any], *, operator: bool = False
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
    options = policy_options(definition)
    return Policy(vhost, name, pattern, dict(definition), priority, apply_to, options)


def effective_definition(policy: Policy | None, operator: Policy | None) -> dict[str, Any]:
    """What the management API shows as ``effective_policy_definition``."""
    merged = dict(policy.definition) if policy is not None else {}
    for key, value in (operator.definition if operator is not None else {}).items():
        if key in merged:
            value = min(merged[key], value) if key in OPERATOR_KEYS else value
        merged[key] = value
    return dict(sorted(merged.items()))


# -- vhost limits ---------------------------------------------------------------------------

LIMIT_NAMES = ("max-connections", "max-queues")


def parse_limits(values: Mapping[str, Any], what: str = "limits") -> dict[str, int]:
    """Vhost limits from their JSON value, or RabbitMQ's validation text."""
    unknown = [(k, v) for k, v in values.items() if k not in LIMIT_NAMES]
    if unknown:
        shown = ",".join(f"{{{term(k)},{term(v)}}}" for k, v in unknown)
        raise PreconditionFailed(f"Validation failed\n\nUnrecognised terms [{shown}] in {what}\n")
    return {key: limit_value(key, value) for key, value in values.items()}


def limit_value(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PreconditionFailed(
            f"Validation failed\n\n{key} should be a number, actually was {term(value)}\n"
        )
    return int(value)
