"""Writes to JetStream from synchronous core code, in order, without blocking the loop.

The core calls :meth:`StreamPublisher.publish` and :meth:`StreamPublisher.send` from
the event loop's thread and returns at once; one task writes the queued messages to the
NATS connection in call order (no task per message). A publish carries a reply subject
under this publisher's inbox; JetStream's PubAck (or error) comes back there and
advances the :class:`~pigeon.cluster.confirms.PubAckLedger`. A publish not
acknowledged within ``retry_after`` seconds (a server died, a stream is electing a
leader, the connection is reconnecting) is sent again with the same ``Nats-Msg-Id``,
which JetStream's duplicate window turns into one stored message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pigeon.cluster.confirms import PubAckLedger

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)

RETRY_AFTER = 2.0  # seconds without a PubAck before a publish is sent again


@dataclass(slots=True)
class _Publish:
    subject: str
    payload: bytes
    headers: dict[str, str]
    position: int
    # False once the target is gone (its queue deleted): acknowledged as dropped.
    alive: Callable[[], bool]
    sent_at: float = field(default=-1.0)


class StreamPublisher:
    def __init__(self, nc: NATS, ledger: PubAckLedger, retry_after: float = RETRY_AFTER) -> None:
        self._nc = nc
        self.ledger = ledger
        self._retry_after = retry_after
        self._inbox = nc.new_inbox() + "."
        # Unique per front-end run and per write: the Nats-Msg-Id of each publish.
        self._id_prefix = os.urandom(8).hex() + "-"
        self._ids = itertools.count(1)
        self._unacked: dict[str, _Publish] = {}
        self._outbox: deque[tuple[str, bytes, str | None, dict[str, str] | None]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._nc.subscribe(self._inbox + "*", cb=self._on_reply)
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="pigeon-js-writer"),
            asyncio.create_task(self._retry_loop(), name="pigeon-js-retry"),
        ]

    async def close(self, timeout: float = 2.0) -> None:
        """Stop, after writing what is queued (acks, naks) if that takes under
        ``timeout`` seconds; publishes not acknowledged by then are not confirmed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._outbox and loop.time() < deadline and not self._nc.is_closed:
            await asyncio.sleep(0.01)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._nc.flush(), max(deadline - loop.time(), 0.01))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def unacknowledged(self) -> int:
        return len(self._unacked)

    def publish(self, subject: str, payload: bytes, stream: str, alive: Callable[[], bool]) -> int:
        """Queue a publish to ``stream``; returns its ledger position."""
        position = self.ledger.begin()
        headers = {"Nats-Msg-Id": f"{self._id_prefix}{next(self._ids)}",
                   "Nats-Expected-Stream": stream}  # fmt: skip
        token = str(position)
        item = _Publish(subject, payload, headers, position, alive)
        self._unacked[token] = item
        self._queue(item, token)
        return position

    def send(self, subject: str, payload: bytes) -> None:
        """A plain message (an ack, nak or term to a delivery's reply subject)."""
        self._outbox.append((subject, payload, None, None))
        self._wake.set()

    def _queue(self, item: _Publish, token: str) -> None:
        item.sent_at = asyncio.get_running_loop().time()
        self._outbox.append((item.subject, item.payload, self._inbox + token, item.headers))
        self._wake.set()

    async def _write_loop(self) -> None:
        outbox = self._outbox
        while True:
            await self._wake.wait()
            self._wake.clear()
            failed = 0
            while outbox:
                subject, payload, reply, headers = outbox.popleft()
                try:
                    await self._nc.publish(subject, payload, reply=reply or "", headers=headers)
                except Exception as error:  # closed or reconnect buffer full: retried
                    if not failed:
                        log.warning("JetStream writes failing (retried): %s", error)
                    failed += 1

    async def _retry_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._retry_after / 2)
            if not self._nc.is_connected:
                continue  # resent once the connection is back, not into its buffer
            now = loop.time()
            for token, item in list(self._unacked.items()):
                if not item.alive():
                    self._finish(token)
                elif now - item.sent_at >= self._retry_after:
                    self._queue(item, token)

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._inbox) :]
        if token not in self._unacked:
            return
        if msg.headers and msg.headers.get("Status") == "503":
            return  # no responders: no stream leader now (or no stream yet); retried
        try:
            answer = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(answer, dict) and "error" in answer:
            log.warning("JetStream refused a publish: %s", answer["error"])
            return  # retried (a leader change answers with an error too)
        self._finish(token)

    def _finish(self, token: str) -> None:
        item = self._unacked.pop(token, None)
        if item is not None:
            self.ledger.done(item.position)
