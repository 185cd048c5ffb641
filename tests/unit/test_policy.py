"""The policy rules on their own: matching, priority, merging, validation."""

from __future__ import annotations

from typing import Any

import pytest

from pigeon.core.options import ExchangeOptions, Overflow
from pigeon.core.policy import Policy, alternate_exchange, best, queue_options
from pigeon.errors import PreconditionFailed
from pigeon.operations.arguments import queue_options as declared_options
from pigeon.operations.policy_definitions import effective_definition, parse_policy


def policy(
    name: str,
    definition: dict[str, Any],
    *,
    pattern: str = ".*",
    priority: int = 0,
    apply_to: str = "all",
    operator: bool = False,
) -> Policy:
    return parse_policy(
        "/",
        name,
        {"pattern": pattern, "definition": definition, "priority": priority, "apply-to": apply_to},
        operator=operator,
    )


def test_the_highest_priority_wins_and_ties_go_to_the_first_name() -> None:
    low, high = (
        policy("b", {"max-length": 1}, priority=1),
        policy("c", {"max-length": 2}, priority=2),
    )
    assert best([low, high], "queue", "q") is high
    tie = policy("a", {"max-length": 3}, priority=2)
    assert best([low, high, tie], "queue", "q") is tie
    assert best([low], "queue", "q", "quorum") is low


def test_apply_to_and_an_unanchored_pattern() -> None:
    queues = policy("q", {"max-length": 1}, pattern="orders", apply_to="queues")
    assert queues.matches("queue", "all-orders-here")
    assert not queues.matches("exchange", "orders")
    quorum = policy("qq", {"delivery-limit": 3}, apply_to="quorum_queues")
    assert quorum.matches("queue", "x", "quorum") and not quorum.matches("queue", "x")


def test_merge_with_an_operator_policy() -> None:
    mine = policy(
        "p",
        {
            "message-ttl": 1000,
            "max-length": 5,
            "overflow": "drop-head",
            "dead-letter-exchange": "dlx",
        },
    )
    ops = policy("o", {"message-ttl": 500, "max-length": 9}, operator=True)
    assert effective_definition(mine, ops) == {
        "dead-letter-exchange": "dlx",
        "max-length": 5,
        "message-ttl": 500,
        "overflow": "drop-head",
    }
    assert effective_definition(None, None) == {}


def test_queue_arguments_against_policies() -> None:
    arguments = {
        "x-message-ttl": 200,
        "x-dead-letter-exchange": "mine",
        "x-overflow": "reject-publish",
    }
    declared = declared_options("q", "/", arguments)
    mine = policy(
        "p",
        {
            "message-ttl": 1000,
            "dead-letter-exchange": "theirs",
            "overflow": "drop-head",
            "max-length": 4,
            "expires": 60000,
        },
    )
    ops = policy("o", {"max-length": 2}, operator=True)
    options = queue_options(declared, mine, ops)
    assert options.message_ttl == 200  # the smaller, here the argument's
    assert options.dead_letter_exchange == "mine"  # the argument's
    assert options.overflow is Overflow.REJECT_PUBLISH
    assert (options.max_length, options.expires) == (2, 60000)
    assert queue_options(declared, None, None) is declared


def test_alternate_exchange_argument_beats_the_policy() -> None:
    ae = policy("ae", {"alternate-exchange": "from-policy"})
    assert alternate_exchange(ExchangeOptions(), ae) == "from-policy"
    assert alternate_exchange(ExchangeOptions(alternate_exchange="own"), ae) == "own"


@pytest.mark.parametrize(
    ("data", "operator", "text"),
    [
        (
            {"pattern": "a", "definition": {"overflow": "x"}},
            False,
            '<<"x">> is not a valid overflow value',
        ),
        (
            {"pattern": "a", "definition": {"dead-letter-exchange": "x"}},
            True,
            '[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised policy settings',
        ),
        ({"pattern": "a", "definition": []}, False, "definition must be a dictionary: []"),
        (
            {"pattern": "a", "definition": {"max-length": 1}, "priority": True},
            False,
            "priority should be a number, actually was true",
        ),
    ],
)
def test_refusals(data: dict[str, Any], operator: bool, text: str) -> None:
    with pytest.raises(PreconditionFailed) as refused:
        parse_policy("/", "p", data, operator=operator)
    assert refused.value.text == f"Validation failed\n\n{text}\n"


def test_quorum_queues() -> None:
    mirrored = policy("m", {"ha-mode": "all", "max-length": 1}, priority=5)
    plain = policy("p", {"max-length": 2, "overflow": "drop-head", "expires": 9000})
    assert best([mirrored, plain], "queue", "q", "quorum") is plain
    assert best([mirrored, plain], "queue", "q") is mirrored
    arguments = {
        "x-queue-type": "quorum",
        "x-overflow": "reject-publish",
        "x-expires": 10,
        "x-max-length": 5,
    }
    declared = declared_options("q", "/", arguments)
    options = queue_options(declared, plain, None)
    # The policy's overflow and expires win on a quorum queue; limits take the smaller.
    assert (options.overflow, options.expires, options.max_length) == (Overflow.DROP_HEAD, 9000, 2)
    classic = queue_options(
        declared_options("q", "/", {**arguments, "x-queue-type": "classic"}), plain, None
    )
    assert (classic.overflow, classic.expires) == (Overflow.REJECT_PUBLISH, 10)
