"""The publishing side of a benchmark: batches of pre-encoded messages, optionally
rate-limited, optionally with publisher confirms and an in-flight window."""

from __future__ import annotations

from pigeon.bench import wire
from pigeon.bench.client import CHANNEL, AmqpClient
from pigeon.bench.pacing import PacedPublisher


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


class Publisher(PacedPublisher):
    """Publishes through one connection until a deadline or a message count."""

    def __init__(
        self,
        client: AmqpClient,
        template: wire.MessageTemplate,
        *,
        window: int = 0,
        rate: float = 0.0,
    ) -> None:
        super().__init__(client, template, window, rate)  # window 0: no confirms
        self.client: AmqpClient = client
        self.tracker = ConfirmTracker()
        client.on_confirm = self._on_confirm

    @property
    def outstanding(self) -> int:
        return self.published - self.tracker.confirmed - self.tracker.nacked

    async def enable_confirms(self) -> None:
        await self.client.call(wire.confirm_select(CHANNEL), wire.CONFIRM_SELECT)

    def _on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        if self.tracker.confirm(tag, multiple, nack):
            self._wakeup()
