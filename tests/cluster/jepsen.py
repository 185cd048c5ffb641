"""A Jepsen-style history of a failover run, and the checker that judges it.

The clients write what they saw into a :class:`History` (every publish sent, its
outcome as the publisher saw it, every delivery with its ``redelivered`` flag, the
faults injected), each with the test process's monotonic clock. :func:`check` then
judges the history alone, as Jepsen's checkers do:

- a publish whose confirm (basic.ack) arrived must be delivered at least once
  (else it is **lost**);
- a publish nacked, or whose connection went away before its confirm, may or may not
  be delivered (both are correct);
- nothing is delivered that was never published;
- of the deliveries of one message, at most one may say ``redelivered = False``: every
  duplicate must be flagged (the flag means "may have been delivered before").

:func:`failover_times` measures, for each fault, how long the clients went without
service: from the kill to the first confirm of a publish sent after the kill, and to
the first delivery of a message published after the kill.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

CONFIRMED, NACKED, UNKNOWN = "confirmed", "nacked", "unknown"


@dataclass(slots=True)
class Publish:
    id: str
    queue: str
    publisher: str
    node: str
    sent: float
    outcome: str | None = None  # CONFIRMED, NACKED, UNKNOWN (connection lost first)
    settled: float | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    queue: str
    consumer: str
    node: str
    redelivered: bool
    at: float


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # what was done, to what role ("kill -9 stream leader")
    name: str  # ... to which process ("kill -9 n2, leader of orders #3")
    at: float
    queue: str | None = None  # the queue it aims at (a stream leader), if any


@dataclass
class History:
    publishes: dict[str, Publish] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # (client, node, time) of every connection a client made: reconnections show here.
    connections: list[tuple[str, str, float]] = field(default_factory=list)

    def sent(self, publish: Publish) -> None:
        assert publish.id not in self.publishes, f"id {publish.id} used twice"
        self.publishes[publish.id] = publish

    def settle(self, id: str, outcome: str, at: float) -> None:
        publish = self.publishes[id]
        assert publish.outcome is None, f"{id}: {outcome} after {publish.outcome}"
        publish.outcome, publish.settled = outcome, at

    def delivered(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def published_to(self, queue: str) -> int:
        return sum(1 for p in self.publishes.values() if p.queue == queue)


@dataclass
class Report:
    published: int
    confirmed: int
    nacked: int
    unknown: int
    delivered: int  # deliveries, duplicates included
    distinct: int  # messages delivered at least once
    duplicates: int  # deliveries beyond the first of each message
    lost: list[str]  # confirmed, never delivered
    phantoms: list[str]  # delivered, never published
    unflagged: dict[str, list[Delivery]]  # messages with more than one unflagged delivery
    survived_unconfirmed: int  # nacked or unknown, delivered anyway (allowed)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.phantoms or self.unflagged)

    def lines(self) -> list[str]:
        lines = [
            f"published {self.published}, confirmed {self.confirmed}, nacked {self.nacked}, "
            f"outcome unknown {self.unknown} (connection lost before the confirm)",
            f"delivered {self.delivered} ({self.distinct} distinct), duplicates "
            f"{self.duplicates} (unflagged: {sum(len(d) - 1 for d in self.unflagged.values())}), "
            f"lost {len(self.lost)}, never published {len(self.phantoms)}, "
            f"unconfirmed but delivered {self.survived_unconfirmed}",
        ]
        for id in self.lost[:10]:
            lines.append(f"  LOST {id}")
        for id in self.phantoms[:10]:
            lines.append(f"  NEVER PUBLISHED {id}")
        for id, seen in list(self.unflagged.items())[:10]:
            shown = ", ".join(f"{d.consumer}@{d.node} t={d.at:.3f}" for d in seen)
            lines.append(f"  UNFLAGGED DUPLICATE {id}: {shown}")
        return lines


def check(history: History) -> Report:
    publishes = history.publishes
    outcomes = Counter(p.outcome for p in publishes.values())
    by_id: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in history.deliveries:
        by_id[delivery.id].append(delivery)
    confirmed = [id for id, p in publishes.items() if p.outcome == CONFIRMED]
    unflagged = {
        id: seen for id, seen in by_id.items() if len([d for d in seen if not d.redelivered]) > 1
    }
    return Report(
        published=len(publishes),
        confirmed=len(confirmed),
        nacked=outcomes[NACKED],
        unknown=outcomes[UNKNOWN] + outcomes[None],
        delivered=len(history.deliveries),
        distinct=len(by_id),
        duplicates=len(history.deliveries) - len(by_id),
        lost=[id for id in confirmed if id not in by_id],
        phantoms=[id for id in by_id if id not in publishes],
        unflagged=unflagged,
        survived_unconfirmed=sum(
            1 for id in by_id if id in publishes and publishes[id].outcome != CONFIRMED
        ),
    )


@dataclass(frozen=True, slots=True)
class Failover:
    fault: Fault
    first_confirm: float | None  # seconds from the kill: any publisher
    last_confirm: float | None  # ... the slowest publisher (None: one never got one)
    first_delivery: float | None  # any queue
    last_delivery: float | None  # the slowest queue

    def line(self) -> str:
        def shown(value: float | None) -> str:
            return "never" if value is None else f"{value:.2f} s"

        return (
            f"{self.fault.name}: confirm after {shown(self.first_confirm)} "
            f"(slowest publisher {shown(self.last_confirm)}), delivery after "
            f"{shown(self.first_delivery)} (slowest queue {shown(self.last_delivery)})"
        )


def failover_times(history: History, until: float) -> list[Failover]:
    """Per fault, over the publishes sent after it (and before the next fault, or
    ``until``): the first confirm of each publisher, the first delivery on each
    queue, as seconds from the kill."""
    found = []
    ends = [f.at for f in history.faults[1:]] + [until]
    for fault, end in zip(history.faults, ends, strict=True):
        after = [p for p in history.publishes.values() if fault.at <= p.sent < end]
        publishers = {p.publisher for p in after}
        queues = {p.queue for p in after}
        confirm: dict[str, float] = {}
        for p in after:
            if p.outcome == CONFIRMED and p.settled is not None:
                confirm[p.publisher] = min(confirm.get(p.publisher, p.settled), p.settled)
        sent_after = {p.id for p in after}
        delivery: dict[str, float] = {}
        for d in history.deliveries:
            if d.id in sent_after:
                delivery[d.queue] = min(delivery.get(d.queue, d.at), d.at)
        found.append(
            Failover(
                fault,
                _since(fault, min(confirm.values(), default=None)),
                _since(fault, max(confirm.values()))
                if confirm and len(confirm) == len(publishers)
                else None,
                _since(fault, min(delivery.values(), default=None)),
                _since(fault, max(delivery.values()))
                if delivery and len(delivery) == len(queues)
                else None,
            )
        )
    return found


def _since(fault: Fault, at: float | None) -> float | None:
    return None if at is None else at - fault.at


def summary(times: list[Failover]) -> list[str]:
    """Per kind of fault: median and worst of many cycles."""
    kinds: dict[str, list[Failover]] = defaultdict(list)
    for failover in times:
        kinds[failover.fault.kind].append(failover)
    lines = []
    for kind, runs in kinds.items():
        confirms = [r.last_confirm for r in runs if r.last_confirm is not None]
        deliveries = [r.last_delivery for r in runs if r.last_delivery is not None]
        lines.append(
            f"{kind} x{len(runs)}: slowest publisher's confirm median "
            f"{_median(confirms)}, max {_max(confirms)}; slowest queue's delivery median "
            f"{_median(deliveries)}, max {_max(deliveries)}"
        )
    return lines


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "-"


def _max(values: list[float]) -> str:
    return f"{max(values):.2f} s" if values else "-"
