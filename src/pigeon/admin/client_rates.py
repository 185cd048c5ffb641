"""Connections' and channels' message counters, sampled for rates and charts.

A channel counts for itself (``ChannelLike.stats``: publish, deliver_get, ack,
redeliver); a connection's counters are its channels' summed, plus the last
sampled counts of the channels it has closed, so they never go backwards.
Each is kept as a queue is (:mod:`pigeon.admin.rates`): a short :class:`Series`
for ``*_details.rate`` and the rings of ``OBJECT_RETENTION`` for charts, both
dropped at the first tick after the channel or connection has gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pigeon.admin.rates import OBJECT_RETENTION, Counters, SampleHistory, Series, add_into
from pigeon.admin.source import ChannelLike, HandlerLike

CHANNEL_CHARTED = ("publish", "deliver_get", "ack", "redeliver")


@dataclass
class Tracked:
    """One channel's or connection's samples, with the object they belong to."""

    thing: object
    series: Series
    history: SampleHistory = field(
        default_factory=lambda: SampleHistory(CHANNEL_CHARTED, OBJECT_RETENTION)
    )
    # A connection's own: its channels at the last tick, and what closed ones counted.
    channels: dict[int, tuple[ChannelLike, Counters]] = field(default_factory=dict)
    closed: Counters = field(default_factory=dict)

    def add(self, now: float, counters: Counters) -> None:
        self.series.add(now, counters)
        self.history.add(now, counters)


class ClientSampler:
    def __init__(self, span: float) -> None:
        self.span = span
        self.channels: dict[int, Tracked] = {}
        self.connections: dict[int, Tracked] = {}

    def sample(self, now: float, handlers: Iterable[HandlerLike]) -> None:
        channels: dict[int, Tracked] = {}
        connections: dict[int, Tracked] = {}
        for handler in handlers:
            conn = self._tracked(self.connections, handler)
            live: dict[int, tuple[ChannelLike, Counters]] = {}
            for channel in list(handler.channels.values()):
                counters: Counters = {key: float(n) for key, n in channel.stats.items()}
                tracked = self._tracked(self.channels, channel)
                tracked.add(now, counters)
                channels[id(channel)] = tracked
                live[id(channel)] = (channel, counters)
            for key, (channel, counters) in conn.channels.items():
                still = live.get(key)
                if still is None or still[0] is not channel:  # closed since the last tick
                    add_into(conn.closed, counters)
            conn.channels = live
            total = dict(conn.closed)
            for _, counters in live.values():
                add_into(total, counters)
            conn.add(now, total)
            connections[id(handler)] = conn
        self.channels, self.connections = channels, connections

    def _tracked(self, known: dict[int, Tracked], thing: object) -> Tracked:
        found = known.get(id(thing))
        if found is None or found.thing is not thing:
            found = Tracked(thing, Series(self.span))
        return found

    def channel(self, channel: ChannelLike) -> Tracked | None:
        found = self.channels.get(id(channel))
        return found if found is not None and found.thing is channel else None

    def connection(self, handler: HandlerLike) -> Tracked | None:
        found = self.connections.get(id(handler))
        return found if found is not None and found.thing is handler else None

    def connection_counters(self, handler: HandlerLike) -> Counters:
        """The connection's counters now (its channels' and its closed channels')."""
        found = self.connection(handler)
        total = dict(found.closed) if found is not None else {}
        open_now = {id(channel): channel for channel in handler.channels.values()}
        for key, (channel, counters) in found.channels.items() if found is not None else ():
            if open_now.get(key) is not channel:  # closed since the last tick: as sampled
                add_into(total, counters)
        for channel in open_now.values():
            add_into(total, {key: float(n) for key, n in channel.stats.items()})
        return total
