"""The load generator's own ceiling: it runs against ``benchmarks.sink`` instead of a broker.

    python -m benchmarks.ceiling [--rounds 3] [--duration 5]

Publishing scenarios let the sink swallow messages (and answer confirms);
consuming scenarios make the sink flood deliveries. Either way the sink does
almost nothing, so the rates are what one load generator process can drive.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.brokers import SinkNode
from benchmarks.compare import Run, machine, measure
from pigeon.bench.stats import median

# name -> (sink flood size, loadgen arguments)
CEILINGS: dict[str, tuple[int, list[str]]] = {
    "publish 16B": (0, ["--consumers", "0", "--size", "16"]),
    "publish 16B confirm 128": (0, ["--consumers", "0", "--size", "16", "--confirm", "128"]),
    "publish 1KiB": (0, ["--consumers", "0", "--size", "1024"]),
    "publish 1KiB confirm 128": (0, ["--consumers", "0", "--size", "1024", "--confirm", "128"]),
    "consume 16B": (16, ["--publishers", "0", "--size", "16"]),
    "consume 1KiB": (1024, ["--publishers", "0", "--size", "1024"]),
}


def row(name: str, runs: list[Run]) -> str:
    good = [r for r in runs if not r.error]
    if not good:
        return f"| {name} | - | - | - | - | 0/{len(runs)} |"
    key = "consume_rate" if name.startswith("consume") else "publish_rate"
    size = 1024 if "1KiB" in name else 16
    rate = median(r.metrics[key] for r in good)
    loadgen = median(r.metrics["loadgen_cores"] for r in good)
    sink = median(r.metrics["broker_cores"] for r in good)
    return (
        f"| {name} | {rate:,.0f} | {rate * size / 1e6:,.1f} | {loadgen:.2f} | {sink:.2f} "
        f"| {len(good)}/{len(runs)} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--drain", type=float, default=5.0)
    opts = p.parse_args(argv)
    lines = [
        f"Machine: {machine()}; medians of {opts.rounds} runs of {opts.duration:g} s.",
        "",
        "| scenario | msg/s | MB/s | loadgen CPU (cores) | sink CPU (cores) | runs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    failed = False
    for name, (flood, args) in CEILINGS.items():
        with SinkNode(flood) as sink:
            runs = [measure(sink, name, r, opts, args) for r in range(1, opts.rounds + 1)]
        failed = failed or any(r.error for r in runs)
        lines.append(row(name, runs))
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
