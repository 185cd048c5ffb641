"""The publishing side of a benchmark: batches of pre-encoded messages, optionally
rate-limited, optionally with publisher confirms and an in-flight window."""

from __future__ import annotations

import asyncio
import time

from pigeon.bench import wire
from pigeon.bench.client import CHANNEL, AmqpClient

# Aim for about this many bytes per transport.write() when running flat out.
_BATCH_BYTES = 64 * 1024
_MAX_BATCH = 500


class ConfirmTracker:
    """Counts confirmed publishes from acks that may be single or ``multiple``.

    Tags are the channel's publish sequence numbers from 1 (RabbitMQ's confirm
    extension). Everything at or below ``watermark`` is confirmed; single
    confirms above it wait in a set until the gap closes.
    """

    def __init__(self) -> None:
        self.watermark = 0
        self.confirmed = 0
        self.nacked = 0
        self._singles: set[int] = set()

    def confirm(self, tag: int, multiple: bool, nack: bool) -> int:
        """Record one ack/nack; return how many publishes it newly settled."""
        if tag <= self.watermark or tag in self._singles:
            return 0
        if multiple:
            below = {t for t in self._singles if t <= tag}
            settled = tag - self.watermark - len(below)
            self._singles -= below
            self.watermark = tag
        else:
            settled = 1
            self._singles.add(tag)
        while self.watermark + 1 in self._singles:
            self.watermark += 1
            self._singles.remove(self.watermark)
        if nack:
            self.nacked += settled
        else:
            self.confirmed += settled
        return settled


class Publisher:
    """Publishes through one connection until a deadline or a message count."""

    def __init__(
        self,
        client: AmqpClient,
        template: wire.MessageTemplate,
        *,
        window: int = 0,
        rate: float = 0.0,
    ) -> None:
        self.client = client
        self.template = template
        self.window = window  # 0: no confirms
        self.rate = rate  # 0: as fast as possible
        self.published = 0
        self.tracker = ConfirmTracker()
        self._batch = max(1, min(_MAX_BATCH, _BATCH_BYTES // len(template.message)))
        self._wake: asyncio.Future[None] | None = None
        client.on_confirm = self._on_confirm
        client.on_writable = self._wakeup

    @property
    def outstanding(self) -> int:
        return self.published - self.tracker.confirmed - self.tracker.nacked

    async def enable_confirms(self) -> None:
        await self.client.call(wire.confirm_select(CHANNEL), wire.CONFIRM_SELECT)

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

    def _on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        if self.tracker.confirm(tag, multiple, nack):
            self._wakeup()

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _sleep_until_woken(self) -> None:
        self._wake = asyncio.get_running_loop().create_future()
        await self._wake
