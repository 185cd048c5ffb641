"""Side by side: RabbitMQ and Pigeon, each scenario run A B A B, medians in markdown.

    python -m benchmarks.compare                      # both brokers, 5 rounds, 10 s runs
    python -m benchmarks.compare --brokers rabbitmq   # only the private RabbitMQ node
    python -m benchmarks.compare --rounds 5 --duration 20 --output docs/bench-run.md

Both brokers are private processes this script starts (temporary data dirs, free
loopback ports) and stops at the end; each measurement is a fresh
``python -m pigeon bench URL --json`` process given the broker's pid.

The scenarios are issue 7's targets. ``latency-half`` runs 16 B messages at half
of RabbitMQ's median consume rate in ``16B`` (its maximum) of the same run (so it
comes after it), or at ``--latency-rate``. Every consumer has a prefetch of 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.brokers import DEFAULT_PIGEON_CMD, REPO, BrokerProcess, PigeonNode, RabbitNode
from pigeon.bench.stats import median

# name -> (description, `pigeon bench` arguments)
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "16B": (
        "1 pub -> 1 queue -> 1 consumer, 16 B, no confirms, manual acks, prefetch 1000",
        ["--size", "16", "--prefetch", "1000"],
    ),
    "1KiB": (
        "1 pub -> 1 queue -> 1 consumer, 1 KiB, no confirms, manual acks, prefetch 1000",
        ["--size", "1024", "--prefetch", "1000"],
    ),
    "1KiB-persistent": (
        "1 -> 1 durable queue -> 1, 1 KiB persistent, confirms (window 1000), prefetch 1000",
        ["--size", "1024", "--persistent", "--confirm", "1000", "--prefetch", "1000"],
    ),
    "fanout4-16B": (
        "1 pub -> fanout -> 4 queues -> 4 consumers, 16 B, prefetch 1000",
        ["--fanout", "4", "--prefetch", "1000"],
    ),
    "16B-confirm": (
        "1 -> 1 -> 1, 16 B, confirms (window 128), prefetch 1000",
        ["--size", "16", "--confirm", "128", "--prefetch", "1000"],
    ),
    "1KiB-confirm": (
        "1 -> 1 -> 1, 1 KiB, confirms (window 128), prefetch 1000",
        ["--size", "1024", "--confirm", "128", "--prefetch", "1000"],
    ),
    "latency-half": (
        "1 -> 1 -> 1, 16 B at half of RabbitMQ's median 16B consume rate (its maximum) "
        "of this run, prefetch 1000",
        ["--size", "16", "--prefetch", "1000"],  # --rate is added when it is known
    ),
}
LATENCY = "latency-half"
LATENCY_BASE = "16B"

METRICS = (
    ("publish_rate", "published msg/s", "{:,.0f}"),
    ("consume_rate", "consumed msg/s", "{:,.0f}"),
    ("p50_us", "p50 µs", "{:,.0f}"),
    ("p99_us", "p99 µs", "{:,.0f}"),
    ("broker_cores", "broker CPU (cores)", "{:.2f}"),
    ("cpu_per_million", "broker CPU s per M msgs", "{:.1f}"),
    ("broker_rss_mb", "broker RSS MB", "{:,.0f}"),
    ("loadgen_cores", "loadgen CPU (cores)", "{:.2f}"),
)


@dataclass
class Run:
    scenario: str
    broker: str
    round: int
    metrics: dict[str, float]
    error: str = ""


def loadgen_command(broker: BrokerProcess, args: list[str], opts: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "pigeon", "bench", broker.url, *args,
        "--broker-pid", str(broker.pid), "--json", "--quiet",
        "--duration", str(opts.duration), "--warmup", str(opts.warmup), "--drain", str(opts.drain),
    ]  # fmt: skip


def measure(
    broker: BrokerProcess, name: str, rnd: int, opts: argparse.Namespace, args: list[str]
) -> Run:
    """One loadgen process against ``broker`` (``opts`` gives duration, warm-up, drain)."""
    argv = loadgen_command(broker, args, opts)
    limit = opts.duration + opts.warmup + opts.drain + 60
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p
        ),
    }  # this checkout
    try:
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=limit,
                              env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Run(name, broker.name, rnd, {}, f"loadgen timed out after {limit:.0f} s")
    try:
        (broker_out,) = json.loads(done.stdout)["brokers"]
    except (json.JSONDecodeError, KeyError, ValueError):
        return Run(name, broker.name, rnd, {}, f"loadgen failed: {done.stderr.strip()[-500:]}")
    if not broker_out["runs"]:
        return Run(name, broker.name, rnd, {}, "; ".join(broker_out["failures"]))
    (result,) = broker_out["runs"]
    return Run(name, broker.name, rnd, metrics_of(result), "; ".join(result["errors"]))


# compare's column -> `pigeon bench --json` run field
_FIELDS = {
    "publish_rate": "published_per_s", "consume_rate": "consumed_per_s",
    "p50_us": "p50_us", "p99_us": "p99_us", "broker_cores": "broker_cores",
    "cpu_per_million": "cpu_s_per_million", "broker_rss_mb": "broker_rss_mb",
    "loadgen_cores": "loadgen_cores",
    # MQTT (benchmarks.compare_mqtt): QoS 1 PUBACKs and idle connections
    "confirm_rate": "confirmed_per_s", "idle_connections": "idle_connections",
    "rss_kb_per_connection": "rss_kb_per_connection", "connects_per_s": "connects_per_s",
    "lost": "lost_messages",
}  # fmt: skip


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of one ``pigeon bench --json`` run that this table shows."""
    return {
        mine: result[theirs] for mine, theirs in _FIELDS.items() if result.get(theirs) is not None
    }


def latency_rate(runs: list[Run], opts: argparse.Namespace) -> float | None:
    """Half of RabbitMQ's (else the first broker's) median consume rate in 16B: the
    issue's "half of RabbitMQ's maximum rate"."""
    if opts.latency_rate:
        return float(opts.latency_rate)
    for broker in ("rabbitmq", *opts.brokers):
        rates = [r.metrics["consume_rate"] for r in runs
                 if r.scenario == LATENCY_BASE and r.broker == broker and not r.error]  # fmt: skip
        if rates:
            return round(median(rates) / 2)
    return None


def scenario_args(name: str, runs: list[Run], opts: argparse.Namespace) -> list[str] | None:
    args = list(SCENARIOS[name][1])
    if name == LATENCY:
        rate = latency_rate(runs, opts)
        if rate is None:
            return None
        args += ["--rate", f"{rate:g}"]
    return args


def run_all(brokers: list[BrokerProcess], opts: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    for name in opts.scenarios:
        args = scenario_args(name, runs, opts)
        if args is None:
            print(f"[{name}] skipped: no {LATENCY_BASE} rate measured and no --latency-rate",
                  file=sys.stderr)  # fmt: skip
            continue
        opts.used_args[name] = args
        for rnd in range(1, opts.rounds + 1):
            for broker in brokers:  # A B A B ...: drift hits both brokers alike
                run = measure(broker, name, rnd, opts, args)
                runs.append(run)
                shown = run.error or f"{run.metrics.get('consume_rate', 0):,.0f} msg/s consumed"
                print(f"[{name} round {rnd}] {broker.name}: {shown}", file=sys.stderr, flush=True)
    return runs


def table(runs: list[Run], brokers: list[BrokerProcess], scenarios: Sequence[str]) -> str:
    head = ["scenario", "broker", *(label for _, label, _ in METRICS), "consumed min-max", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in scenarios:
        for broker in brokers:
            mine = [r for r in runs if r.scenario == name and r.broker == broker.name]
            good = [r for r in mine if not r.error]
            cells = [name, broker.name]
            for key, _, fmt in METRICS:
                values = [r.metrics[key] for r in good if key in r.metrics]
                cells.append(fmt.format(median(values)) if values else "-")
            consumed = [r.metrics["consume_rate"] for r in good]
            cells.append(f"{min(consumed):,.0f}-{max(consumed):,.0f}" if consumed else "-")
            cells.append(f"{len(good)}/{len(mine)}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(runs: list[Run], brokers: list[BrokerProcess], opts: argparse.Namespace) -> str:
    out = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')}; medians of {opts.rounds} rounds, "
        f"{opts.duration:g} s measured after {opts.warmup:g} s warm-up per run.",
        "",
        "Machine: " + machine(),
        "Brokers: " + "; ".join(f"{b.name} = {b.version}" for b in brokers),
        "Checkout: " + opts.checkout,
        "",
        "Command: `python -m benchmarks.compare "
        + " ".join(shlex.quote(a) for a in sys.argv[1:])
        + "`",
        "",
        table(runs, brokers, opts.scenarios),
        "",
        "Scenarios:",
        *(
            f"- `{n}`: {SCENARIOS[n][0]} (`{' '.join(opts.used_args.get(n, SCENARIOS[n][1]))}`)"
            for n in opts.scenarios
        ),
    ]
    errors = [f"- {r.scenario} round {r.round} {r.broker}: {r.error}" for r in runs if r.error]
    if errors:
        out += ["", "Errors:", *errors]
    return "\n".join(out) + "\n"


def checkout() -> str:
    """The commit measured, and whether the working tree had uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True)
    state = " + uncommitted changes in src/" if dirty.stdout.strip() else ""
    return f"{head.stdout.strip() or '?'}{state}"


def machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024**2:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    p.add_argument("--brokers", default="rabbitmq,pigeon", help="comma-separated, run order")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated names")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--drain", type=float, default=10.0)
    p.add_argument("--pigeon-cmd", default=DEFAULT_PIGEON_CMD,
                   help="command line with {port} and {data_dir} placeholders")  # fmt: skip
    p.add_argument("--latency-rate", type=float,
                   help="msg/s of latency-half (default: RabbitMQ 16B / 2)")  # fmt: skip
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument("--raw", type=Path, help="write every run's metrics as JSON here")
    opts = p.parse_args(argv)
    opts.brokers = opts.brokers.split(",")
    opts.used_args = {}  # scenario -> the arguments it ran with (latency-half gets its rate)
    opts.scenarios = opts.scenarios.split(",")
    unknown = [s for s in opts.scenarios if s not in SCENARIOS]
    if LATENCY in opts.scenarios and LATENCY_BASE in opts.scenarios:  # the base runs first
        opts.scenarios.remove(LATENCY)
        opts.scenarios.insert(opts.scenarios.index(LATENCY_BASE) + 1, LATENCY)
    if unknown or not set(opts.brokers) <= {"rabbitmq", "pigeon"}:
        p.error(f"unknown scenario or broker: {unknown or opts.brokers}")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    opts.checkout = checkout()  # before the run: others may commit while it runs
    with ExitStack() as stack:
        brokers: list[BrokerProcess] = []
        for name in opts.brokers:
            node = RabbitNode() if name == "rabbitmq" else PigeonNode(opts.pigeon_cmd)
            brokers.append(stack.enter_context(node))
            print(f"started {node.version} on {node.url} (pid {node.pid})", file=sys.stderr)
        runs = run_all(brokers, opts)
    text = report(runs, brokers, opts)
    print(text)
    if opts.output:
        opts.output.write_text(text)
    if opts.raw:
        opts.raw.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
