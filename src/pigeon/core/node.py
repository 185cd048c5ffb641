"""The broker's protocol-neutral state: its virtual hosts."""

from __future__ import annotations

from pigeon.core.ports import DeliveryObserver, Scheduler
from pigeon.core.vhost import VirtualHost
from pigeon.errors import NotFound, PreconditionFailed


class Node:
    def __init__(self, scheduler: Scheduler, name: str = "pigeon@localhost") -> None:
        self.name = name
        self.scheduler = scheduler
        self.vhosts: dict[str, VirtualHost] = {}
        # Shared by every vhost and queue: observers added later see all queues.
        self.observers: list[DeliveryObserver] = []

    def add_vhost(self, name: str) -> VirtualHost:
        if name in self.vhosts:
            raise PreconditionFailed(f"vhost '{name}' already exists")
        vhost = VirtualHost(name, self.scheduler, self.observers)
        self.vhosts[name] = vhost
        return vhost

    def vhost(self, name: str) -> VirtualHost:
        try:
            return self.vhosts[name]
        except KeyError:
            raise NotFound(f"no vhost '{name}'") from None

    def delete_vhost(self, name: str) -> None:
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            raise NotFound(f"no vhost '{name}'")
        for queue in list(vhost.queues.values()):
            vhost.remove_queue(queue)
