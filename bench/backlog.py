"""Backlog fill-and-drain: N persistent messages into one durable queue, then drain.

Measures, per broker, the fill rate (publishes with a confirm window), the
drain rate (one consumer, manual acks), the broker's peak RSS while the
backlog sits there and while it drains, and its CPU seconds. Both brokers are
private processes started here (bench.brokers), measured one after the other.

    python -m bench.backlog --count 1000000 --size 1024
    python -m bench.backlog --count 100000 --brokers pigeon
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import asdict, dataclass

import pika

from bench.brokers import BrokerProcess, PigeonNode, RabbitNode

QUEUE = "bench-backlog"


@dataclass
class BacklogResult:
    broker: str
    version: str
    count: int
    size: int
    fill_seconds: float
    drain_seconds: float
    peak_rss_mb: float
    rss_full_mb: float
    cpu_seconds: float

    @property
    def fill_rate(self) -> float:
        return self.count / self.fill_seconds

    @property
    def drain_rate(self) -> float:
        return self.count / self.drain_seconds


class Sampler:
    """Peak RSS of a process, sampled every 50 ms on a thread of its own."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * 4096
        except (OSError, ValueError, IndexError):
            return 0

    def cpu(self) -> float:
        with open(f"/proc/{self.pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fill(url: str, count: int, body: bytes) -> None:
    """Publish as fast as the broker takes them (its flow control applies), then one
    confirmed publish on the same channel and queue: both brokers write one queue in
    order, so its confirm means the whole backlog is on disk."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    persistent = pika.BasicProperties(delivery_mode=2)
    for _ in range(count - 1):
        channel.basic_publish("", QUEUE, body, persistent)
    channel.confirm_delivery()
    channel.basic_publish("", QUEUE, body, persistent)
    connection.close()


def drain(url: str, count: int, prefetch: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    for received, (method, _props, _body) in enumerate(
            channel.consume(QUEUE, inactivity_timeout=30), start=1):
        if method is None:
            raise RuntimeError(f"drain stalled after {received - 1} of {count}")
        if received % (prefetch // 2) == 0 or received == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if received == count:
            break
    channel.cancel()
    channel.queue_delete(QUEUE)
    connection.close()


def measure(node: BrokerProcess, count: int, size: int) -> BacklogResult:
    body = bytes(size)
    with node, Sampler(node.pid) as sampler:
        cpu0 = sampler.cpu()
        started = time.monotonic()
        fill(node.url, count, body)
        filled = time.monotonic()
        time.sleep(1.0)  # let paging settle, then read the resting footprint
        rss_full = sampler.rss()
        drain_started = time.monotonic()
        drain(node.url, count, prefetch=1000)
        drained = time.monotonic()
        cpu = sampler.cpu() - cpu0
        return BacklogResult(node.name, node.version, count, size, filled - started,
                             drained - drain_started, sampler.peak / 2**20,
                             rss_full / 2**20, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--brokers", default="rabbitmq,pigeon")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    nodes = {"rabbitmq": RabbitNode, "pigeon": PigeonNode}
    results = [measure(nodes[name](), args.count, args.size)
               for name in args.brokers.split(",")]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    print("| broker | messages | fill msg/s | drain msg/s | RSS full MB | peak RSS MB "
          "| broker CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r.version} | {r.count:,} x {r.size} B | {r.fill_rate:,.0f} "
              f"| {r.drain_rate:,.0f} | {r.rss_full_mb:,.0f} | {r.peak_rss_mb:,.0f} "
              f"| {r.cpu_seconds:,.1f} |")


if __name__ == "__main__":
    main()
