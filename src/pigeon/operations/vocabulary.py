"""RabbitMQ's vocabulary (argument tables, policy definitions, limits) for the core."""

from __future__ import annotations

from pigeon.operations.arguments import (
    binding_problem,
    check_new_queue,
    exchange_inequivalence,
    exchange_options,
    queue_inequivalence,
    queue_options,
)
from pigeon.operations.policy_definitions import parse_limits, parse_policy


class RabbitVocabulary:
    """RabbitMQ's vocabulary as the core's :class:`~pigeon.core.options.Vocabulary`."""

    queue_options = staticmethod(queue_options)
    check_new_queue = staticmethod(check_new_queue)
    queue_inequivalence = staticmethod(queue_inequivalence)
    exchange_options = staticmethod(exchange_options)
    exchange_inequivalence = staticmethod(exchange_inequivalence)
    binding_problem = staticmethod(binding_problem)
    policy = staticmethod(parse_policy)
    limits = staticmethod(parse_limits)


RABBITMQ = RabbitVocabulary()
