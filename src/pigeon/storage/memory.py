"""The store that keeps nothing: for embedded brokers and tests that need no disk.

Durable entities and persistent messages live as long as the process, like
everything else; :meth:`sync` completes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pigeon.core.message import Message
from pigeon.core.ports import BindingRecord, ExchangeRecord, Pager, QueueRecord, Snapshot


class MemoryStore:
    keeps_messages = False
    # Nothing is paged out: a broker without a data folder keeps every message in memory.
    pager: Pager | None = None

    def load(self, *, messages: bool = True) -> Snapshot:
        return Snapshot()

    def read_messages(self, vhost: str, queue: str, seqs: list[int]) -> list[tuple[int, Message]]:
        return []

    def save_vhost(self, name: str) -> None:
        pass

    def delete_vhost(self, name: str) -> None:
        pass

    def save_exchange(self, record: ExchangeRecord) -> None:
        pass

    def delete_exchange(self, vhost: str, name: str) -> None:
        pass

    def save_queue(self, record: QueueRecord) -> None:
        pass

    def delete_queue(self, vhost: str, name: str) -> None:
        pass

    def save_binding(self, record: BindingRecord) -> None:
        pass

    def delete_binding(self, record: BindingRecord) -> None:
        pass

    def add_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        pass

    def rewrite_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        pass

    def remove_message(self, vhost: str, queue: str, seq: int) -> None:
        pass

    def purge(self, vhost: str, queue: str) -> None:
        pass

    def save_document(self, kind: str, key: str, value: Any) -> None:
        pass

    def delete_document(self, kind: str, key: str) -> None:
        pass

    def sync(self, callback: Callable[[], object]) -> None:
        callback()

    # Nothing is ever waiting for a disk.
    written = 0
    durable = 0

    queued_writes = 0
    commit_latency = 0.0

    def close(self) -> None:
        pass
