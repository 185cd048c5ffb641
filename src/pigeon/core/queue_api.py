"""What the rest of the broker may ask of a queue, wherever the queue lives.

Routing enqueues through :class:`QueueHandle`, and protocols consume, get, settle,
purge and delete through it. :class:`pigeon.core.queue.Queue` (and the quorum
queue) implement it in this process; a queue owned by another process or another
node (a cluster's exclusive queues, queues spread over several cores) implements
the same methods by forwarding them. Delivered messages travel as
:class:`~pigeon.core.entry.Entry` values (the message, its number in the queue,
``redelivered``), which a remote handle builds from what it receives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pigeon.core.consumer import Consumer
    from pigeon.core.entry import Entry
    from pigeon.core.message import Message


class QueueHandle(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def vhost(self) -> str: ...

    @property
    def durable(self) -> bool: ...

    @property
    def exclusive(self) -> bool: ...

    @property
    def auto_delete(self) -> bool: ...

    # -- counts ----------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        """Ready messages."""
        ...

    @property
    def unacked(self) -> int:
        """Delivered messages not settled yet."""
        ...

    @property
    def consumers(self) -> list[Consumer]: ...

    # -- publishing ------------------------------------------------------------------

    @property
    def takes_runs(self) -> bool:
        """Whether :meth:`enqueue_run` may take several messages at once."""
        ...

    def enqueue(
        self,
        message: Message,
        now: float,
        due: list[QueueHandle] | None = None,
    ) -> bool:
        """Add a routed message; False if the queue refused it (overflow). With ``due``,
        the queue notes itself there instead of handing the message over at once."""
        ...

    def enqueue_run(self, messages: list[Message], now: float, due: list[QueueHandle]) -> None: ...

    def dispatch_due(self) -> None:
        """The batch of publishes that noted this queue in ``due`` is over."""
        ...

    # -- consuming and settling --------------------------------------------------------

    def check_exclusive_use(self, exclusive: bool) -> None:
        """Raise AccessRefused if a consumer with this exclusivity cannot be added."""
        ...

    def add_consumer(self, consumer: Consumer) -> None: ...

    def remove_consumer(self, consumer: Consumer) -> None: ...

    def get(self, no_ack: bool) -> Entry | None: ...

    def get_later(self, no_ack: bool, done: Callable[[Entry | None], object]) -> bool:
        """True if the answer to a get comes later, through ``done`` (cluster mode)."""
        ...

    def ack_many(self, entries: Sequence[Entry]) -> None: ...

    def requeue(self, entries: Iterable[Entry]) -> None: ...

    def reject(self, entry: Entry) -> None:
        """Settle without requeue (dead-lettered if the queue says where)."""
        ...

    # -- the whole queue ---------------------------------------------------------------

    def purge(self) -> int:
        """Drop the ready messages; how many."""
        ...

    def delete(self) -> int:
        """Cancel the consumers and drop the ready messages; how many."""
        ...
