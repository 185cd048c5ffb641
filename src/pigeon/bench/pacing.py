"""The publishing loop both protocols' load generators share: batches of pre-encoded
messages until a deadline or a count, optionally rate-limited, optionally with an
in-flight window (AMQP publisher confirms, MQTT QoS 1 PUBACKs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

# Aim for about this many bytes per transport.write() when running flat out.
BATCH_BYTES = 64 * 1024
MAX_BATCH = 500


class Connection(Protocol):
    error: BaseException | None
    on_writable: Callable[[], None]

    @property
    def can_write(self) -> bool: ...

    def write(self, data: bytes | bytearray, /) -> None: ...


class Template(Protocol):
    message: bytes

    def batch(self, first: int, count: int, stamp: int, /) -> bytes | bytearray: ...


class PacedPublisher:
    """Publishes through one connection; a subclass says how many publishes are
    :attr:`outstanding` (sent, not yet confirmed) and calls :meth:`_wakeup` when a
    confirmation opens the window."""

    def __init__(self, client: Connection, template: Template, window: int, rate: float) -> None:
        self.client = client
        self.template = template
        self.window = window  # 0: no confirmations awaited
        self.rate = rate  # 0: as fast as possible
        self.published = 0
        self._batch = max(1, min(MAX_BATCH, BATCH_BYTES // len(template.message)))
        self._wake: asyncio.Future[None] | None = None
        client.on_writable = self._wakeup

    @property
    def outstanding(self) -> int:
        raise NotImplementedError

    async def run(self, deadline: float, limit: int = 0) -> None:
        """Publish until the loop time reaches ``deadline`` or ``limit`` messages went out."""
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, self._wakeup)
        start = loop.time()
        try:
            while self.client.error is None:
                now = loop.time()
                if now >= deadline or (limit and self.published >= limit):
                    return
                count = self._allowed(now - start, limit)
                if count > 0 and self.client.can_write:
                    first = self.published + 1
                    self.client.write(self.template.batch(first, count, time.monotonic_ns()))
                    self.published += count
                    await asyncio.sleep(0)  # let the consumers' reads run
                elif self.rate and count <= 0 and self.client.can_write and self._window_open():
                    await asyncio.sleep(min(0.001, deadline - now))
                else:
                    await self._sleep_until_woken()
        finally:
            timer.cancel()

    def _allowed(self, elapsed: float, limit: int) -> int:
        count = self._batch
        if limit:
            count = min(count, limit - self.published)
        if self.window:
            count = min(count, self.window - self.outstanding)
        if self.rate:
            count = min(count, int(elapsed * self.rate) + 1 - self.published)
        return count

    def _window_open(self) -> bool:
        return not self.window or self.outstanding < self.window

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _sleep_until_woken(self) -> None:
        self._wake = asyncio.get_running_loop().create_future()
        await self._wake
