"""Running work on the broker's event loop from wherever the caller is.

All core state belongs to the broker's loop (DESIGN.md: one event loop, core
state changed only on its thread). A caller on that loop runs the work at
once; any other thread or loop hands it over with ``call_soon_threadsafe`` and
waits for the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pigeon.core.node import Node

T = TypeVar("T")


def on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def submit(
    loop: asyncio.AbstractEventLoop, action: Callable[[], T]
) -> concurrent.futures.Future[T]:
    """Run ``action`` on ``loop`` from another thread; its result arrives in the future."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(action())
        except BaseException as error:  # handed to the caller, who raises it
            future.set_exception(error)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # the loop is closed
        raise RuntimeError("the broker is not running") from None
    return future


# Until the core calls watchers itself (``Node.watchers``: plain callables, run after any
# change of messages, consumers or topology), changes made through this API wake
# ``wait_for`` here, and changes made by network clients are seen by a short re-check.
_fallback_watchers: weakref.WeakKeyDictionary[Node, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)
FALLBACK_RECHECK = 0.01
WATCHERS = "watchers"


def watchers_of(node: Node) -> tuple[list[Callable[[], None]], bool]:
    """The list to add a change callback to, and whether the core itself calls it."""
    hooked = getattr(node, WATCHERS, None)
    if isinstance(hooked, list):
        return hooked, True
    return _fallback_watchers.setdefault(node, []), False


def nudge(node: Node) -> None:
    """Tell waiting ``wait_for`` calls that this API changed something (fallback only)."""
    if not hasattr(node, WATCHERS):
        for watcher in list(_fallback_watchers.get(node, ())):
            watcher()
