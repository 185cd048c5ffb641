"""Commands taken by stores whose work is spelled as named methods (memory, SQLite)."""

from __future__ import annotations

from typing import Any

from pigeon.core.commands import (
    AddMessage,
    Bind,
    BindingRecord,
    Command,
    DeclareExchange,
    DeclareQueue,
    DeclareVhost,
    DeleteDocument,
    DeleteExchange,
    DeleteQueue,
    DeleteVhost,
    ExchangeRecord,
    ForgetRetained,
    Purge,
    QueueRecord,
    RemoveMessages,
    RetainMessage,
    SaveDocument,
    Unbind,
)
from pigeon.core.message import Message


class AppliesCommands:
    """``apply(command)`` in terms of the store's named methods, which subclasses write."""

    def apply(self, command: Command) -> None:
        match command:
            case AddMessage(vhost, queue, seq, message):
                # An upsert: the number may be stored already (a quorum queue's count).
                self.rewrite_message(vhost, queue, seq, message)
            case RemoveMessages(vhost, queue, seqs):
                for seq in seqs:
                    self.remove_message(vhost, queue, seq)
            case DeclareQueue(record):
                self.save_queue(record)
            case DeleteQueue(vhost, name):
                self.delete_queue(vhost, name)
            case Bind(record):
                self.save_binding(record)
            case Unbind(record):
                self.delete_binding(record)
            case DeclareExchange(record):
                self.save_exchange(record)
            case DeleteExchange(vhost, name):
                self.delete_exchange(vhost, name)
            case DeclareVhost(name):
                self.save_vhost(name)
            case DeleteVhost(name):
                self.delete_vhost(name)
            case Purge(vhost, queue):
                self.purge(vhost, queue)
            case SaveDocument(kind, key, value):
                self.save_document(kind, key, value)
            case DeleteDocument(kind, key):
                self.delete_document(kind, key)
            case RetainMessage(vhost, topic, message, expires):
                self.retain_message(vhost, topic, message, expires)
            case ForgetRetained(vhost, topic):
                self.forget_retained(vhost, topic)

    def save_vhost(self, name: str) -> None:
        raise NotImplementedError

    def delete_vhost(self, name: str) -> None:
        raise NotImplementedError

    def save_exchange(self, record: ExchangeRecord) -> None:
        raise NotImplementedError

    def delete_exchange(self, vhost: str, name: str) -> None:
        raise NotImplementedError

    def save_queue(self, record: QueueRecord) -> None:
        raise NotImplementedError

    def delete_queue(self, vhost: str, name: str) -> None:
        raise NotImplementedError

    def save_binding(self, record: BindingRecord) -> None:
        raise NotImplementedError

    def delete_binding(self, record: BindingRecord) -> None:
        raise NotImplementedError

    def rewrite_message(self, vhost: str, queue: str, seq: int, message: Message) -> None:
        raise NotImplementedError

    def remove_message(self, vhost: str, queue: str, seq: int) -> None:
        raise NotImplementedError

    def purge(self, vhost: str, queue: str) -> None:
        raise NotImplementedError

    def save_document(self, kind: str, key: str, value: Any) -> None:
        raise NotImplementedError

    def delete_document(self, kind: str, key: str) -> None:
        raise NotImplementedError

    def retain_message(
        self, vhost: str, topic: str, message: Message, expires: float | None
    ) -> None:
        raise NotImplementedError

    def forget_retained(self, vhost: str, topic: str) -> None:
        raise NotImplementedError
