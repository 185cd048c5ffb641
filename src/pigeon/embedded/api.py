"""The broker's side of the in-process API: the mixin, and views of other vhosts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from pigeon.embedded.operations import Operations
from pigeon.embedded.sync import SyncAPI

if TYPE_CHECKING:
    from pigeon.auth.users import UserStore
    from pigeon.config import Config
    from pigeon.core.message import Message
    from pigeon.core.node import Node


class Replies(Protocol):
    def deliver(self, key: str, message: Message) -> int:
        """Hand a message to the direct reply-to waiting on ``key``: 1, or 0 if none."""
        ...


class ContextLike(Protocol):
    """What the API uses of the services the broker's connections share."""

    @property
    def users(self) -> UserStore: ...
    @property
    def replies(self) -> Replies: ...


class EmbeddedAPI(Operations):
    """Mixed into :class:`pigeon.broker.Broker`: the API on its default vhost, and vhosts.

    Needs from the broker: ``config``, ``node`` (None when not started; its
    scheduler is the broker's event loop) and ``context`` (users, reply-to).
    """

    config: Config
    node: Node | None
    context: ContextLike | None

    if TYPE_CHECKING:

        @property
        def amqp_url(self) -> str: ...

    def _place(self) -> tuple[EmbeddedAPI, str]:
        return self, self.config.default_vhost

    def _require_node(self) -> Node:
        if self.node is None:
            raise RuntimeError("the broker is not running")
        return self.node

    def _broker_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._require_node().scheduler
        if not isinstance(loop, asyncio.AbstractEventLoop) or loop.is_closed():
            raise RuntimeError("the broker is not running")
        return loop

    @property
    def sync(self) -> BrokerSyncAPI:
        """The same API for code that is not async: ``broker.sync.publish(...)``."""
        return BrokerSyncAPI(self)

    def vhost(self, name: str) -> VhostView:
        """The same API on another virtual host (see :meth:`add_vhost`)."""
        return VhostView(self, name)

    async def add_vhost(self, name: str) -> VhostView:
        """Create a vhost the default user may use; ``.amqp_url`` of the result points to it."""
        return await self._run_durable(lambda: self._add_vhost_now(name))

    async def delete_vhost(self, name: str) -> None:
        """Delete a vhost with its queues and exchanges."""
        await self._run_durable(lambda: self._delete_vhost_now(name))

    def _add_vhost_now(self, name: str) -> VhostView:
        self._require_node().add_vhost(name)
        if self.context is not None:
            self.context.users.set_permission(name, self.config.default_user)
        self._changed()
        return VhostView(self, name)

    def _delete_vhost_now(self, name: str) -> None:
        self._require_node().delete_vhost(name)
        if self.context is not None:
            self.context.users.delete_permission(name, self.config.default_user)
        self._changed()


class VhostView(Operations):
    """The in-process API on one vhost of a broker: ``broker.vhost(name)``."""

    def __init__(self, broker: EmbeddedAPI, name: str) -> None:
        self.broker = broker
        self.name = name

    def __repr__(self) -> str:
        return f"<VhostView {self.name!r}>"

    def _place(self) -> tuple[EmbeddedAPI, str]:
        return self.broker, self.name

    @property
    def amqp_url(self) -> str:
        """The broker's AMQP URL with this vhost in its path."""
        base = self.broker.amqp_url
        return base[: base.rindex("/") + 1] + quote(self.name, safe="")


class BrokerSyncAPI(SyncAPI):
    """``broker.sync``: the sync API on the default vhost, plus vhost management."""

    def __init__(self, broker: EmbeddedAPI) -> None:
        super().__init__(broker)
        self._broker = broker

    def add_vhost(self, name: str) -> VhostView:
        broker = self._broker
        return broker._blocking_durable(lambda: broker._add_vhost_now(name))

    def delete_vhost(self, name: str) -> None:
        broker = self._broker
        broker._blocking_durable(lambda: broker._delete_vhost_now(name))
