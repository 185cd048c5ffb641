"""How fast an embedded broker starts and stops: the cost of a broker per test.

    python -m benchmarks.startup [--runs 200] [--uvloop]

Four measurements, each over ``--runs`` brokers in one process (after one
warm-up), in milliseconds:

- ``async start``: ``await Broker(config).start()`` until it returns (listening);
- ``ready to serve``: from creating the broker until a client that connected
  right after ``start`` has received ``connection.start`` (the broker answers);
- ``async stop``: ``await broker.stop()`` with that client still connected;
- ``thread start`` / ``thread stop``: entering and leaving ``Broker.in_thread()``,
  which adds a thread and an event loop of its own.

And once, in a fresh interpreter: ``cold start``, from before ``import pigeon.broker``
until the first broker is listening (what the first test of a session pays).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pigeon.bench.stats import percentile
from pigeon.broker import Broker
from pigeon.config import Config

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
COLD = """
import time
t0 = time.perf_counter()
import asyncio
from pigeon.broker import Broker
from pigeon.config import Config
async def main():
    broker = Broker(
        Config(
            mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None,
            management_port=None,
        )
    )
    await broker.start()
    ready = time.perf_counter()
    await broker.stop()
    print((ready - t0) * 1000)
asyncio.run(main())
"""


def config() -> Config:
    return Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=None
    )


async def async_cycle() -> tuple[float, float, float]:
    """(start, ready to serve, stop) of one broker, in seconds."""
    t0 = time.perf_counter()
    broker = Broker(config())
    await broker.start()
    t1 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.amqp_port)
    writer.write(AMQP_HEADER)
    await reader.readexactly(7)  # frame header of connection.start
    t2 = time.perf_counter()
    await broker.stop()
    t3 = time.perf_counter()
    writer.close()
    await writer.wait_closed()
    return t1 - t0, t2 - t0, t3 - t2


def thread_cycle() -> tuple[float, float]:
    t0 = time.perf_counter()
    manager = Broker.in_thread(config())
    manager.__enter__()
    t1 = time.perf_counter()
    manager.__exit__(None, None, None)
    return t1 - t0, time.perf_counter() - t1


def cold_start() -> float:
    output = subprocess.run(
        [sys.executable, "-c", COLD], check=True, capture_output=True, text=True
    ).stdout
    return float(output.strip()) / 1000


def line(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    mean = sum(ms) / len(ms)
    return (
        f"| {name} | {mean:.2f} | {percentile(ms, 50):.2f} | {percentile(ms, 99):.2f} "
        f"| {ms[-1]:.2f} |"
    )


def measure(runs: int, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> list[str]:
    async def many() -> list[tuple[float, float, float]]:
        await async_cycle()  # warm-up: first-use imports and caches
        return [await async_cycle() for _ in range(runs)]

    loop = loop_factory()
    try:
        cycles = loop.run_until_complete(many())
    finally:
        loop.close()
    thread_cycle()
    threaded = [thread_cycle() for _ in range(runs)]
    return [
        line("async start", [c[0] for c in cycles]),
        line("ready to serve", [c[1] for c in cycles]),
        line("async stop (a client connected)", [c[2] for c in cycles]),
        line("thread start", [t[0] for t in threaded]),
        line("thread stop", [t[1] for t in threaded]),
        line("cold start (import + first broker)", [cold_start() for _ in range(5)]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--uvloop", action="store_true", help="run the async brokers on uvloop")
    args = parser.parse_args()
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    print(
        f"Embedded broker start/stop, {args.runs} runs, Python {sys.version.split()[0]}, "
        f"{'uvloop' if args.uvloop else 'asyncio'} loop, ms"
    )
    print("| measurement | mean | p50 | p99 | max |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in measure(args.runs, factory):
        print(row)


if __name__ == "__main__":
    main()
