"""A vhost's policies, operator policies and limits: kept, stored, and applied.

Setting, changing or clearing a policy re-matches every queue and exchange of
the vhost at once (RabbitMQ's ``update_matched_objects``); an object whose
matching policies changed gets its new effective options. A new queue or
exchange is matched when it is declared or restored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pigeon.core.exchange import Exchange
from pigeon.core.options import QueueOptions, Vocabulary
from pigeon.core.policy import Policy, best, queue_options
from pigeon.core.ports import Store
from pigeon.core.queue import Queue
from pigeon.errors import NotFound, PreconditionFailed

POLICY, OPERATOR_POLICY, VHOST_LIMITS = "policy", "operator_policy", "vhost_limits"


def document_key(*parts: str) -> str:
    """A store document key made of names that may contain any character."""
    return json.dumps(list(parts))


class VhostPolicies:
    def __init__(self, vhost: str, store: Store | None) -> None:
        self.vhost = vhost
        self.store = store
        self.policies: dict[str, Policy] = {}
        self.operator_policies: dict[str, Policy] = {}
        # max-connections, max-queues; a negative value means no limit (RabbitMQ's -1).
        self.limits: dict[str, int] = {}

    def table(self, operator: bool) -> dict[str, Policy]:
        return self.operator_policies if operator else self.policies

    def put(self, policy: Policy, *, operator: bool = False, persist: bool = True) -> bool:
        """Add or replace a policy; True if it is new."""
        table = self.table(operator)
        created = policy.name not in table
        table[policy.name] = policy
        if persist and self.store is not None:
            self.store.save_document(
                OPERATOR_POLICY if operator else POLICY,
                document_key(self.vhost, policy.name),
                policy.json(),
            )
        return created

    def remove(self, name: str, *, operator: bool = False) -> None:
        if self.table(operator).pop(name, None) is None:
            raise NotFound(f"no policy '{name}' in vhost '{self.vhost}'")
        if self.store is not None:
            self.store.delete_document(
                OPERATOR_POLICY if operator else POLICY, document_key(self.vhost, name)
            )

    def set_limits(self, limits: Mapping[str, int], *, persist: bool = True) -> None:
        self.limits = dict(limits)
        if persist and self.store is not None:
            if self.limits:
                self.store.save_document(VHOST_LIMITS, self.vhost, self.limits)
            else:
                self.store.delete_document(VHOST_LIMITS, self.vhost)

    def limit(self, name: str) -> int | None:
        """A limit in force (None: unlimited)."""
        value = self.limits.get(name)
        return None if value is None or value < 0 else value

    def check_queue_limit(self, name: str, queues: int) -> None:
        """Refuse a new queue past ``max-queues``, with RabbitMQ's text (406 over AMQP)."""
        limit = self.limit("max-queues")
        if limit is not None and queues >= limit:
            raise PreconditionFailed(
                f"cannot declare queue '{name}': queue limit in vhost "
                f"'{self.vhost}' ({limit}) is reached"
            )

    def restore(self, documents: Mapping[str, Mapping[str, Any]], vocabulary: Vocabulary) -> None:
        """Policies and limits an earlier run stored (before any queue is restored)."""
        for operator, kind in ((False, POLICY), (True, OPERATOR_POLICY)):
            for value in documents.get(kind, {}).values():
                if isinstance(value, dict) and value.get("vhost") == self.vhost:
                    policy = vocabulary.policy(
                        self.vhost, str(value.get("name")), value, operator=operator
                    )
                    self.put(policy, operator=operator, persist=False)
        limits = documents.get(VHOST_LIMITS, {}).get(self.vhost)
        if isinstance(limits, dict):
            self.set_limits(vocabulary.limits(limits), persist=False)

    def forget(self) -> None:
        """The vhost is deleted: its stored policies and limits go too."""
        if self.store is None:
            return
        for operator in (False, True):
            for name in self.table(operator):
                self.store.delete_document(
                    OPERATOR_POLICY if operator else POLICY, document_key(self.vhost, name)
                )
        if self.limits:
            self.store.delete_document(VHOST_LIMITS, self.vhost)

    # -- matching ------------------------------------------------------------------

    def _match(self, name: str, kind: str) -> tuple[Policy | None, Policy | None]:
        return (
            best(self.policies.values(), "queue", name, kind),
            best(self.operator_policies.values(), "queue", name, kind),
        )

    def for_queue(
        self, name: str, declared: QueueOptions
    ) -> tuple[Policy | None, Policy | None, QueueOptions]:
        """The policies a queue gets and the options they leave it."""
        policy, operator = self._match(name, declared.type)
        return policy, operator, queue_options(declared, policy, operator)

    def apply_queue(self, queue: Queue) -> None:
        policy, operator = self._match(queue.name, queue.type)
        if (policy, operator) == (queue.policy, queue.operator_policy):
            return  # the common case for most queues: nothing to change
        queue.policy, queue.operator_policy = policy, operator
        options = queue_options(queue.declared, policy, operator)
        if options != queue.args:
            queue.apply_options(options)

    def apply_exchange(self, exchange: Exchange) -> None:
        policy = best(self.policies.values(), "exchange", exchange.name)
        operator = best(self.operator_policies.values(), "exchange", exchange.name)
        exchange.apply_policy(policy, operator)

    def apply(self, queues: Iterable[Queue], exchanges: Iterable[Exchange]) -> None:
        """Re-match everything after a policy was set, changed or cleared."""
        for queue in list(queues):
            self.apply_queue(queue)
        for exchange in exchanges:
            self.apply_exchange(exchange)
