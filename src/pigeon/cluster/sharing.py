"""Definitions shared through the KV bucket: this node's changes go out in order
(a declare of a new queue or exchange as a compare-and-set create), the other
nodes' changes come in through a watch.

Conflicts (docs/cluster.md, "Conflicting declares"): a node checks a declare
against its own copy first; when two nodes create the same key at once, the
bucket keeps the first and the other node is told (``on_conflict``) and takes
the winner's definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from pigeon.cluster import definitions as defs
from pigeon.cluster.link import ClusterLink
from pigeon.core.commands import Command, DeclareExchange, DeclareQueue

log = logging.getLogger("pigeon.cluster")

RETRY_DELAY = 0.5


class Sharing:
    def __init__(
        self,
        link: ClusterLink,
        on_remote: Callable[[Command], object],
        on_conflict: Callable[[Command, Command], object],
    ) -> None:
        self.link = link
        self.origin = uuid.uuid4().hex
        self.on_remote = on_remote
        self.on_conflict = on_conflict
        self.queued = 0
        self.acknowledged = 0
        self._outgoing: asyncio.Queue[Command] = asyncio.Queue()
        self._waiters: list[tuple[int, Callable[[], object]]] = []
        self._kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.caught_up = asyncio.Event()
        # The watch's lag (metrics): seconds from the servers storing the last entry
        # to its arrival here (as far as the clocks agree), and entries still behind it.
        self.watch_lag = 0.0
        self.watch_pending = 0

    async def open(self, replicas: int) -> None:
        """The bucket (created on first use), then the watch; returns once this node
        has applied every definition the bucket held."""
        js = self.link.jetstream
        try:
            self._kv = await js.key_value(defs.BUCKET)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(bucket=defs.BUCKET, history=1, replicas=replicas)
        watcher = await self._kv.watchall()
        self._tasks = [
            asyncio.create_task(self._watch(watcher), name="pigeon-cluster-watch"),
            asyncio.create_task(self._write_all(), name="pigeon-cluster-write"),
        ]
        await self.caught_up.wait()

    # -- out ---------------------------------------------------------------------------

    def share(self, command: Command) -> None:
        self.queued += 1
        self._outgoing.put_nowait(command)

    def when_acknowledged(self, target: int, callback: Callable[[], object]) -> None:
        if self.acknowledged >= target:
            callback()
        else:
            self._waiters.append((target, callback))

    async def _write_all(self) -> None:
        while True:
            command = await self._outgoing.get()
            while True:
                try:
                    await self._write(command)
                    break
                except (nats.errors.Error, TimeoutError) as error:
                    # Not written yet: replies that wait for it stay held.
                    log.warning("cluster: writing %s failed (%s); retrying", command, error)
                    await asyncio.sleep(RETRY_DELAY)
            self.acknowledged += 1
            ready = [w for w in self._waiters if w[0] <= self.acknowledged]
            self._waiters = [w for w in self._waiters if w[0] > self.acknowledged]
            for _, callback in ready:
                callback()

    async def _write(self, command: Command) -> None:
        assert self._kv is not None
        key = defs.key_of(command)
        value = defs.encode_value(command, self.origin)
        if not isinstance(command, DeclareQueue | DeclareExchange):
            await self._kv.put(key, value)
            return
        try:
            await self._kv.create(key, value)
        except nats.js.errors.KeyWrongLastSequenceError:
            await self._create_over(key, value, command)

    async def _create_over(self, key: str, value: bytes, command: Command) -> None:
        """The key exists: a tombstone is overwritten (compare-and-set on its revision),
        the same definition is a redeclare, another one a conflict this node lost."""
        assert self._kv is not None
        entry = await self._kv.get(key)
        _, theirs = defs.decode_value(entry.value or b"")
        if defs.is_delete(theirs):
            try:
                await self._kv.update(key, value, last=entry.revision)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                entry = await self._kv.get(key)
                _, theirs = defs.decode_value(entry.value or b"")
        if not defs.same_definition(command, theirs):
            log.warning(
                "cluster: %s was declared on another node at the same time with other "
                "arguments; keeping that node's definition",
                key,
            )
            self.on_conflict(command, theirs)

    # -- in ----------------------------------------------------------------------------

    async def _watch(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None:  # the end of what the bucket held when the watch began
                self.caught_up.set()
                continue
            self._measure(entry)
            if not entry.value:  # a KV delete or purge marker: not written by Pigeon
                continue
            try:
                origin, command = defs.decode_value(entry.value)
            except ValueError as damaged:
                log.warning("cluster: ignoring %s: %s", entry.key, damaged)
                continue
            if origin != self.origin:
                self.on_remote(command)

    def _measure(self, entry: Any) -> None:
        self.watch_pending = int(entry.delta or 0)
        # (Entries read while catching up are as old as the definitions: no lag.)
        if self.caught_up.is_set() and isinstance(entry.created, datetime.datetime):
            now = datetime.datetime.now(datetime.UTC)
            self.watch_lag = max(0.0, (now - entry.created).total_seconds())

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
