"""Awaiting the disk: the one helper every "it is done" answer outside AMQP uses.

The management API (and with it ``pigeon ctl``) and the embedded API answer a
change once it is on disk: they make the change, then ``await
until_durable(store)``. Store writes are queued in call order and committed in
groups, so the barrier covers the change and whatever else was queued before
it, in the same commit as the message writes of that moment.
"""

from __future__ import annotations

import asyncio

from pigeon.core.ports import Store


async def until_durable(store: Store | None) -> None:
    """Return once every write queued on ``store`` so far is on disk (at once when
    nothing is pending, or without a store)."""
    if store is None or store.durable >= store.written:
        return
    done = asyncio.get_running_loop().create_future()

    def on_disk() -> None:
        if not done.done():  # the waiter may have been cancelled meanwhile
            done.set_result(None)

    store.sync(on_disk)
    await done
