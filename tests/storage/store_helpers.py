"""Helpers of the store tests (a module of its own: pytest puts test folders on sys.path)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pigeon.core.message import Message, Properties
from pigeon.storage.sqlite import SQLiteStore

Opener = Callable[..., SQLiteStore]


async def synced(store: SQLiteStore) -> None:
    """Wait for the store's durability barrier."""
    done = asyncio.get_running_loop().create_future()
    store.sync(lambda: done.set_result(None))
    await asyncio.wait_for(done, 30)


def message(n: int, body: bytes | None = None, **properties: Any) -> Message:
    props = Properties(durable=True, message_id=f"m{n}".encode(), **properties)
    return Message("ex", f"rk.{n}", props, body if body is not None else f"body {n}".encode())


def same(a: Message, b: Message) -> bool:
    """Equal as stored: exchange, routing key, properties and body (Message has no __eq__)."""
    return (a.exchange, a.routing_key, a.properties, a.body) == (
        b.exchange,
        b.routing_key,
        b.properties,
        b.body,
    )
