"""Backlog fill-and-drain on private brokers: N persistent (or, with ``--transient``,
transient) messages into one durable queue, then drain, one broker after the other.

It is ``pigeon bench --backlog N --persistent`` (fill with confirms, window 1000;
1 s rest; one consumer with prefetch 1000 drains, acking every 500) against a
RabbitMQ node and a Pigeon that this script starts (benchmarks.brokers) and stops.
It reports the fill and drain rates, the broker's RSS while the backlog rests,
its peak RSS over the run (sampled every 100 ms) and its CPU seconds.

    python -m benchmarks.backlog --count 1000000 --size 1024
    python -m benchmarks.backlog --count 1000000 --size 1024 --transient
    python -m benchmarks.backlog --count 100000 --brokers pigeon
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.brokers import BrokerProcess, PigeonNode, RabbitNode
from pigeon.bench.monitor import Monitor
from pigeon.bench.progress import Progress
from pigeon.bench.runner import run_sync
from pigeon.bench.scenario import Scenario


@dataclass
class BacklogResult:
    broker: str
    version: str
    count: int
    size: int
    fill_rate: float
    drain_rate: float
    peak_rss_mb: float
    rss_full_mb: float
    cpu_seconds: float
    exact: bool  # every message published, confirmed and drained
    errors: list[str]


def measure(
    node: BrokerProcess, count: int, size: int, stall: float, persistent: bool = True
) -> BacklogResult:
    with node:
        scenario = Scenario(
            url=node.url, backlog=count, size=size, persistent=persistent, confirm=1000,
            prefetch=1000, drain=stall, broker_pid=node.pid,
        )  # fmt: skip
        progress = Progress(sys.stderr, node.name)
        result = run_sync(scenario, Monitor(node.pid, progress))
        progress.finish()
    return BacklogResult(
        node.name, node.version, count, size, result.fill_rate or 0.0, result.drain_rate or 0.0,
        result.broker_peak_rss_mb or 0.0, result.rss_full_mb or 0.0, result.broker_cpu_s or 0.0,
        result.drained and result.consumed_total == count, result.errors,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--brokers", default="rabbitmq,pigeon")
    parser.add_argument("--stall", type=float, default=30.0,
                        help="fail a phase after this many seconds without progress")  # fmt: skip
    parser.add_argument("--transient", action="store_true",
                        help="delivery mode 1 (default: persistent, delivery mode 2)")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    nodes = {"rabbitmq": RabbitNode, "pigeon": PigeonNode}
    results = [measure(nodes[name](), args.count, args.size, args.stall, not args.transient)
               for name in args.brokers.split(",")]  # fmt: skip
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
        return
    print("| broker | messages | fill msg/s | drain msg/s | RSS full MB | peak RSS MB "
          "| broker CPU s | exact |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        exact = "yes" if r.exact else "no: " + "; ".join(r.errors)
        print(f"| {r.version} | {r.count:,} x {r.size} B | {r.fill_rate:,.0f} "
              f"| {r.drain_rate:,.0f} | {r.rss_full_mb:,.0f} | {r.peak_rss_mb:,.0f} "
              f"| {r.cpu_seconds:,.1f} | {exact} |")  # fmt: skip


if __name__ == "__main__":
    main()
