"""Side by side over MQTT: Mosquitto and Pigeon, each scenario run A B A B, medians in markdown.

    python -m benchmarks.compare_mqtt                         # both brokers, 5 rounds
    python -m benchmarks.compare_mqtt --brokers mosquitto     # Mosquitto alone
    python -m benchmarks.compare_mqtt --rounds 3 --duration 5 --output /tmp/mqtt.md

Both brokers are private processes this script starts (free loopback ports,
temporary directories) and stops; each measurement is a fresh
``python -m pigeon bench --protocol mqtt URL --json`` process given the broker's
pid. Mosquitto's config is in ``benchmarks.mqtt_brokers``. When this checkout's
Pigeon has no MQTT listener yet, the report says so and Mosquitto is measured
alone.

``latency-half`` runs 16 B QoS 0 messages at half of Mosquitto's median consume
rate in ``qos0-16B`` (its maximum) of the same run, or at ``--latency-rate``.
``idle-10k`` opens 10,000 idle connections (keep-alive 3600 s) and reports the
broker's RSS growth per connection.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

if not __package__:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.brokers import DEFAULT_PIGEON_CMD, BrokerProcess
from benchmarks.compare import Run, checkout, machine, measure
from benchmarks.mqtt_brokers import MosquittoNode, PigeonMqttNode, raise_open_files
from pigeon.bench.stats import median

_M = ["--protocol", "mqtt"]
_PAIRS = ["--publishers", "4", "--consumers", "4", "--queues", "4"]


def _throughput() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for qos in (0, 1):
        for label, size in (("16B", "16"), ("1KiB", "1024")):
            conf = ", inflight window 128" if qos else ""
            out[f"qos{qos}-{label}"] = (
                f"1 publisher -> 1 topic -> 1 subscriber, {label}, QoS {qos}{conf}",
                [*_M, "--qos", str(qos), "--size", size],
            )
            out[f"qos{qos}-{label}-4x4"] = (
                f"4 publishers -> 4 topics -> 4 subscribers (one each), {label}, QoS {qos}{conf}",
                [*_M, "--qos", str(qos), "--size", size, *_PAIRS],
            )
    return out


# name -> (description, `pigeon bench` arguments)
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    **_throughput(),
    "latency-half": (
        "1 -> 1 -> 1, 16 B QoS 0 at half of Mosquitto's median qos0-16B consume rate "
        "(its maximum) of this run",
        [*_M, "--size", "16"],  # --rate is added when it is known
    ),
    "idle-10k": (
        "10,000 idle connections (MQTT 3.1.1, keep-alive 3600 s, opened 250 at a time); "
        "broker RSS growth per connection",
        [*_M, "--idle", "10000"],
    ),
}
LATENCY, LATENCY_BASE, IDLE = "latency-half", "qos0-16B", "idle-10k"

COLUMNS = (
    ("consume_rate", "consumed msg/s", "{:,.0f}"),
    ("confirm_rate", "PUBACKs/s", "{:,.0f}"),
    ("lost", "QoS 0 lost", "{:,.0f}"),
    ("p50_us", "p50 µs", "{:,.0f}"),
    ("p99_us", "p99 µs", "{:,.0f}"),
    ("broker_cores", "broker CPU (cores)", "{:.2f}"),
    ("cpu_per_million", "broker CPU s per M msgs", "{:.1f}"),
    ("broker_rss_mb", "broker RSS MB", "{:,.1f}"),
    ("rss_kb_per_connection", "kB per idle connection", "{:,.2f}"),
    ("loadgen_cores", "loadgen CPU (cores)", "{:.2f}"),
)


def latency_rate(runs: list[Run], opts: argparse.Namespace) -> float | None:
    """Half of Mosquitto's (else the first measured broker's) median qos0-16B rate."""
    if opts.latency_rate:
        return float(opts.latency_rate)
    for broker in ("mosquitto", *opts.brokers):
        rates = [r.metrics["consume_rate"] for r in runs
                 if r.scenario == LATENCY_BASE and r.broker == broker and not r.error]  # fmt: skip
        if rates:
            return round(median(rates) / 2)
    return None


def run_all(brokers: list[BrokerProcess], opts: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    for name in opts.scenarios:
        args = list(SCENARIOS[name][1]) + opts.extra
        if name == LATENCY:
            rate = latency_rate(runs, opts)
            if rate is None:
                print(f"[{name}] skipped: no {LATENCY_BASE} rate and no --latency-rate",
                      file=sys.stderr)  # fmt: skip
                continue
            args += ["--rate", f"{rate:g}"]
        opts.used_args[name] = args
        # Opening 10,000 connections takes longer than a run's drain on a busy machine.
        run_opts = argparse.Namespace(**{**vars(opts), "drain": max(opts.drain, 300.0)})
        for rnd in range(1, (opts.idle_rounds if name == IDLE else opts.rounds) + 1):
            for broker in brokers:  # A B A B ...: drift hits both brokers alike
                run = measure(broker, name, rnd, run_opts if name == IDLE else opts, args)
                runs.append(run)
                shown = run.error or _summary(run)
                print(f"[{name} round {rnd}] {broker.name}: {shown}", file=sys.stderr, flush=True)
    return runs


def _summary(run: Run) -> str:
    if "rss_kb_per_connection" in run.metrics:
        return f"{run.metrics['rss_kb_per_connection']:,.2f} kB per idle connection"
    return f"{run.metrics.get('consume_rate', 0):,.0f} msg/s consumed"


def table(runs: list[Run], brokers: list[BrokerProcess], scenarios: Sequence[str]) -> str:
    head = ["scenario", "broker", *(label for _, label, _ in COLUMNS), "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in scenarios:
        for broker in brokers:
            mine = [r for r in runs if r.scenario == name and r.broker == broker.name]
            if not mine:
                continue
            good = [r for r in mine if not r.error]
            cells = [name, broker.name]
            for key, _, fmt in COLUMNS:
                values = [r.metrics[key] for r in good if key in r.metrics]
                cells.append(fmt.format(median(values)) if values else "-")
            cells.append(f"{len(good)}/{len(mine)}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(runs: list[Run], brokers: list[BrokerProcess], missing: list[str],
           opts: argparse.Namespace) -> str:  # fmt: skip
    out = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')}; medians of {opts.rounds} rounds "
        f"({opts.idle_rounds} for {IDLE}), {opts.duration:g} s measured after "
        f"{opts.warmup:g} s warm-up per run.",
        "",
        "Machine: " + machine(),
        "Brokers: " + "; ".join(f"{b.name} = {b.version}" for b in brokers),
        "Checkout: " + opts.checkout,
        *(f"Not measured: {text}" for text in missing),
        "",
        "Command: `python -m benchmarks.compare_mqtt "
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare_mqtt", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--brokers", default="mosquitto,pigeon", help="comma-separated, run order")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated names")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--idle-rounds", type=int, default=1, help=f"rounds of {IDLE} (1)")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--drain", type=float, default=10.0)
    p.add_argument("--mqtt-version", choices=("3.1.1", "5"), default="3.1.1")
    p.add_argument("--pigeon-cmd", default=DEFAULT_PIGEON_CMD,
                   help="command line with {port} and {data_dir} placeholders; "
                   "--mqtt-port is added")  # fmt: skip
    p.add_argument("--latency-rate", type=float,
                   help=f"msg/s of {LATENCY} (default: Mosquitto {LATENCY_BASE} / 2)")  # fmt: skip
    p.add_argument("--output", type=Path, help="also write the markdown report here")
    p.add_argument("--raw", type=Path, help="write every run's metrics as JSON here")
    opts = p.parse_args(argv)
    opts.brokers = opts.brokers.split(",")
    opts.scenarios = opts.scenarios.split(",")
    opts.extra = ["--mqtt-version", opts.mqtt_version]
    opts.used_args = {}
    unknown = [s for s in opts.scenarios if s not in SCENARIOS]
    if LATENCY in opts.scenarios and LATENCY_BASE in opts.scenarios:  # the base runs first
        opts.scenarios.remove(LATENCY)
        opts.scenarios.insert(opts.scenarios.index(LATENCY_BASE) + 1, LATENCY)
    if unknown or not set(opts.brokers) <= {"mosquitto", "pigeon"}:
        p.error(f"unknown scenario or broker: {unknown or opts.brokers}")
    return opts


def start_brokers(stack: ExitStack, opts: argparse.Namespace) -> tuple[list[BrokerProcess],
                                                                      list[str]]:  # fmt: skip
    """The brokers that speak MQTT, and a sentence for each that does not."""
    brokers: list[BrokerProcess] = []
    missing: list[str] = []
    for name in opts.brokers:
        node = MosquittoNode() if name == "mosquitto" else PigeonMqttNode(opts.pigeon_cmd)
        try:
            stack.enter_context(node)
        except (RuntimeError, TimeoutError, OSError) as exc:
            missing.append(f"{name}: did not start ({exc})")
            continue
        if isinstance(node, PigeonMqttNode) and node.missing is not None:
            missing.append(f"pigeon: MQTT listener missing ({node.missing})")
            print(f"PIGEON'S MQTT LISTENER IS MISSING: {node.missing}", file=sys.stderr)
            node.stop()
            continue
        brokers.append(node)
        print(f"started {node.version} on {node.url} (pid {node.pid})", file=sys.stderr)
    return brokers, missing


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    opts.checkout = checkout()
    limit = raise_open_files()
    if IDLE in opts.scenarios and limit < 10_300:
        print(f"RLIMIT_NOFILE is {limit}: {IDLE} will fail", file=sys.stderr)
    with ExitStack() as stack:
        brokers, missing = start_brokers(stack, opts)
        runs = run_all(brokers, opts) if brokers else []
    text = report(runs, brokers, missing, opts)
    print(text)
    if opts.output:
        opts.output.write_text(text)
    if opts.raw:
        opts.raw.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    if not brokers:
        return 2
    return 1 if any(r.error for r in runs) or missing else 0


if __name__ == "__main__":
    sys.exit(main())
