"""Message size sweep on private brokers, drawn as a chart of msg/s and MB/s by size.

    python -m benchmarks.chart --output docs/bench-sizes.png --save sizes.json
    python -m benchmarks.chart --from-json sizes.json --output docs/bench-sizes.png

Each size (16 B to 64 KiB, transient, confirms with a window of 128, prefetch
1000, one publisher, one queue, one consumer) runs ``pigeon bench`` on every broker in
turn, A B A B ... for ``--rounds``; the chart shows the medians of the consumed
rate. Brokers are private processes (benchmarks.brokers), as in benchmarks.compare.
Drawing needs matplotlib (``pip install pigeon-broker[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.brokers import DEFAULT_PIGEON_CMD, BrokerProcess, PigeonNode, RabbitNode
from benchmarks.compare import machine, measure
from pigeon.bench.stats import median

SIZES = (16, 128, 1024, 4096, 16384, 65536)


def sweep(brokers: list[BrokerProcess], opts: argparse.Namespace) -> dict[str, Any]:
    """Median consumed msg/s and MB/s per broker and size."""
    rates: dict[str, dict[int, list[float]]] = {
        b.name: {s: [] for s in opts.sizes} for b in brokers
    }
    for size in opts.sizes:
        args = ["--size", str(size), "--confirm", "128", "--prefetch", "1000"]
        for rnd in range(1, opts.rounds + 1):
            for broker in brokers:  # A B A B ...: drift hits both brokers alike
                run = measure(broker, f"{size}B", rnd, opts, args)
                if not run.error:
                    rates[broker.name][size].append(run.metrics["consume_rate"])
                shown = run.error or f"{run.metrics['consume_rate']:,.0f} msg/s"
                print(f"[{size} B round {rnd}] {broker.name}: {shown}", file=sys.stderr)
    out: dict[str, Any] = {"sizes": list(opts.sizes), "machine": machine(), "brokers": {}}
    for broker in brokers:
        msg_s = [median(rates[broker.name][s]) if rates[broker.name][s] else None
                 for s in opts.sizes]  # fmt: skip
        out["brokers"][broker.name] = {
            "version": broker.version,
            "msg_s": msg_s,
            "mb_s": [None if rate is None else rate * size / 1e6
                     for rate, size in zip(msg_s, opts.sizes, strict=True)],
        }  # fmt: skip
    return out


def label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def plot(data: dict[str, Any], output: Path) -> None:
    """Two panels (msg/s, MB/s) of bars grouped by size, one colour per broker."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    sizes = data["sizes"]
    names = list(data["brokers"])
    width = 0.8 / max(len(names), 1)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, key, title in ((axes[0], "msg_s", "messages/s"), (axes[1], "mb_s", "MB/s")):
        for index, name in enumerate(names):
            # A size with no good run is a gap (NaN), not a zero.
            values = [float("nan") if v is None else v for v in data["brokers"][name][key]]
            xs = [i + (index - (len(names) - 1) / 2) * width for i in range(len(sizes))]
            axis.bar(xs, values, width, label=data["brokers"][name].get("version", name))
        axis.set_xticks(range(len(sizes)), [label(s) for s in sizes])
        axis.set_xlabel("message size")
        axis.set_title(f"{title} consumed (confirms, window 128, prefetch 1000; medians)")
        axis.grid(axis="y", alpha=0.3)
    axes[1].set_yscale("log")  # 16 B and 64 KiB differ by three orders of magnitude
    axes[0].legend()
    figure.suptitle(data.get("machine", ""), fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chart", description=__doc__)
    p.add_argument("--output", type=Path, default=Path("bench-sizes.png"), help="PNG to write")
    p.add_argument("--from-json", type=Path, help="draw a saved sweep instead of running one")
    p.add_argument("--save", type=Path, help="also write the sweep's numbers as JSON here")
    p.add_argument("--brokers", default="rabbitmq,pigeon", help="comma-separated, run order")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="bytes, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--drain", type=float, default=10.0)
    p.add_argument("--pigeon-cmd", default=DEFAULT_PIGEON_CMD)
    opts = p.parse_args(argv)
    opts.sizes = [int(s) for s in opts.sizes.split(",")]
    opts.brokers = opts.brokers.split(",")
    if not set(opts.brokers) <= {"rabbitmq", "pigeon"}:
        p.error(f"unknown broker in {opts.brokers}")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.from_json:
        data = json.loads(opts.from_json.read_text())
    else:
        with ExitStack() as stack:
            brokers: list[BrokerProcess] = []
            for name in opts.brokers:
                node = RabbitNode() if name == "rabbitmq" else PigeonNode(opts.pigeon_cmd)
                brokers.append(stack.enter_context(node))
            data = sweep(brokers, opts)
        if opts.save:
            opts.save.write_text(json.dumps(data, indent=1))
    plot(data, opts.output)
    print(f"wrote {opts.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
