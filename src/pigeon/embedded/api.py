"""The broker's side of the in-process API: the mixin, and views of other vhosts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

from pigeon.auth.authorization import Identity, StoreAuthority
from pigeon.embedded.operations import Operations
from pigeon.embedded.sync import SyncAPI

if TYPE_CHECKING:
    from pigeon.config import Config
    from pigeon.core.node import Node
    from pigeon.operations.services import Services


class EmbeddedAPI(Operations):
    """Mixed into :class:`pigeon.broker.Broker`: the API on its default vhost, and vhosts.

    Needs from the broker: ``config``, ``node`` (None when not started; its
    scheduler is the broker's event loop) and ``context`` (users, reply-to).
    """

    config: Config
    node: Node | None
    context: Services | None

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

    def as_user(self, user: str, vhost: str | None = None) -> VhostView:
        """The same API, checked as ``user`` on ``vhost`` (default: the default vhost):
        the permissions an AMQP client logged in as that user has, nothing more
        (docs/security.md). Without it the API is the program's own and unchecked."""
        if self.context is None:
            raise RuntimeError("the broker is not running")
        users = self.context.users
        found = users.users.get(user)
        if found is None:
            raise ValueError(f"no user {user!r}")
        identity = Identity(user, StoreAuthority(users, user), found.tags, mechanism="embedded")
        return VhostView(self, vhost or self.config.default_vhost, identity)

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

    def __init__(self, broker: EmbeddedAPI, name: str, user: Identity | None = None) -> None:
        self.broker = broker
        self.name = name
        self.user = user

    def __repr__(self) -> str:
        who = f" as {self.user.name!r}" if self.user is not None else ""
        return f"<VhostView {self.name!r}{who}>"

    def _user(self) -> Identity | None:
        return self.user

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
