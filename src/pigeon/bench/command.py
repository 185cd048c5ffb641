"""``pigeon bench [URL]``: run a scenario against a broker (or two, alternately) and report.

For example ``pigeon bench URL_A --against URL_B --size 1024 --confirm 128`` runs
A B A B ... five rounds and prints the medians and the A/B ratios. See docs/bench.md.
``pigeon bench --protocol mqtt mqtt://127.0.0.1:1883 --qos 1`` does the same over MQTT;
``--rate half`` first finds the maximum rate (one run on the first broker), then
measures latency at half of it; ``--idle N`` measures memory per idle MQTT connection.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from pigeon.bench import wire
from pigeon.bench.client import BrokerClosed, BrokerUrl
from pigeon.bench.monitor import Monitor
from pigeon.bench.mqtt_client import MqttUrl
from pigeon.bench.mqtt_run import run_mqtt_sync
from pigeon.bench.mqtt_scenario import DEFAULT_MQTT_URL, MqttScenario
from pigeon.bench.mqtt_wire import MqttError
from pigeon.bench.process import find_listener_pid, is_loopback
from pigeon.bench.progress import Progress
from pigeon.bench.report import BrokerRuns, table, to_json
from pigeon.bench.runner import run_sync
from pigeon.bench.scenario import DEFAULT_URL, Result, Scenario

HALF = -1.0  # ``--rate half``


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pigeon bench",
        description="Benchmark an AMQP 0-9-1 broker (RabbitMQ, LavinMQ, Pigeon, ...) or, "
        "with --protocol mqtt, an MQTT broker (Mosquitto, Pigeon, ...).",
        epilog="Latency is publish -> delivery time on this process's clock (both ends are "
        "here), network included. Numbers are explained in docs/bench.md.",
    )
    p.add_argument(
        "url",
        nargs="?",
        help=f"broker URL (default {DEFAULT_URL}, or {DEFAULT_MQTT_URL} with --protocol mqtt)",
    )
    p.add_argument(
        "--protocol",
        choices=("amqp", "mqtt"),
        help="wire protocol (default: the URL's scheme, else amqp)",
    )
    _scenario_options(p.add_argument_group("scenario"))
    _mqtt_options(p.add_argument_group("MQTT (with --protocol mqtt)"))
    _run_options(p)
    return p


def _scenario_options(shape: argparse._ArgumentGroup) -> None:
    shape.add_argument("--publishers", type=int, default=1, help="publishing connections")
    shape.add_argument("--consumers", type=int, default=1, help="consuming connections")
    shape.add_argument(
        "--queues",
        type=int,
        default=1,
        help="queues (MQTT: topics); connections spread over them",
    )
    shape.add_argument("--size", type=int, default=16, help="body bytes, at least 16 (default 16)")
    shape.add_argument(
        "--persistent",
        action="store_true",
        help="durable queues and persistent messages (delivery mode 2)",
    )
    shape.add_argument(
        "--confirm",
        type=int,
        nargs="?",
        const=128,
        default=0,
        metavar="N",
        help="publisher confirms, at most N unconfirmed per publisher (default N 128); "
        "MQTT: the QoS 1 inflight window (128)",
    )
    shape.add_argument("--prefetch", type=int, default=200, help="basic.qos per consumer")
    acks = shape.add_mutually_exclusive_group()
    acks.add_argument(
        "--manual-ack",
        dest="auto_ack",
        action="store_false",
        default=False,
        help="ack with multiple=true every prefetch/2 deliveries (default)",
    )
    acks.add_argument(
        "--auto-ack",
        dest="auto_ack",
        action="store_true",
        help="consume with no-ack: the broker forgets a message once sent",
    )
    shape.add_argument(
        "--fanout",
        type=int,
        default=0,
        metavar="N",
        help="publish to a fanout exchange bound to N queues, one consumer each",
    )
    shape.add_argument(
        "--rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="total msg/s over all publishers (latency mode); default unlimited; 'half': "
        "half of the maximum, found by one unlimited run on the first broker",
    )
    shape.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="closed run: each publisher stops after N messages",
    )
    shape.add_argument(
        "--backlog",
        type=int,
        default=0,
        metavar="N",
        help="fill one queue with N messages (confirms), rest 1 s, drain it",
    )


def _mqtt_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--qos", type=int, choices=(0, 1), default=0, help="publish and subscribe QoS"
    )
    group.add_argument(
        "--mqtt-version",
        choices=("3.1.1", "5"),
        default="3.1.1",
        help="protocol version of CONNECT (3.1.1)",
    )
    group.add_argument("--keepalive", type=int, help="seconds (60; 3600 with --idle)")
    group.add_argument(
        "--idle",
        type=int,
        default=0,
        metavar="N",
        help="open N idle connections and report the broker's RSS growth per connection",
    )
    group.add_argument(
        "--connect-batch", type=int, default=250, help="idle connections opened at a time"
    )


def _rate(text: str) -> float:
    """A rate in msg/s, or ``half`` (-1.0 here, resolved by a probe run)."""
    if text == "half":
        return HALF
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (a number or 'half')") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the rate must not be negative")
    return value


def _run_options(p: argparse.ArgumentParser) -> None:
    timing = p.add_argument_group("timing")
    timing.add_argument("--warmup", type=float, default=1.0, help="seconds not measured (1)")
    timing.add_argument("--duration", type=float, default=10.0, help="seconds measured (10)")
    timing.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="seconds to wait for the last deliveries and confirms (10); in "
        "backlog mode, how long a phase may make no progress",
    )
    timing.add_argument("--rounds", type=int, help="runs per broker (5 with --against, else 1)")
    out = p.add_argument_group("brokers and output")
    out.add_argument("--against", metavar="URL2", help="also run on this broker, A B A B ...")
    out.add_argument("--broker-pid", type=int, help="the first broker's pid (for CPU and RSS)")
    out.add_argument("--against-pid", type=int, help="the --against broker's pid")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--quiet", action="store_true", help="no live progress on stderr")
    out.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop")


def scenario_of(args: argparse.Namespace) -> Scenario:
    if args.protocol == "mqtt":
        return _mqtt_scenario_of(args)
    fanout = args.fanout
    return Scenario(
        url=args.url or DEFAULT_URL,
        publishers=args.publishers,
        consumers=fanout or args.consumers,
        queues=fanout or args.queues,
        size=args.size,
        persistent=args.persistent,
        confirm=args.confirm,
        prefetch=args.prefetch,
        auto_ack=args.auto_ack,
        fanout=fanout,
        duration=args.duration,
        warmup=args.warmup,
        rate=max(args.rate, 0.0),
        count=args.count,
        drain=args.drain,
        backlog=args.backlog,
    )


def _mqtt_scenario_of(args: argparse.Namespace) -> MqttScenario:
    keepalive = args.keepalive if args.keepalive is not None else (3600 if args.idle else 60)
    return MqttScenario(
        url=args.url or DEFAULT_MQTT_URL,
        publishers=args.publishers,
        consumers=args.consumers,
        queues=args.queues,
        size=args.size,
        confirm=args.confirm,
        duration=args.duration,
        warmup=args.warmup,
        rate=max(args.rate, 0.0),
        count=args.count,
        drain=args.drain,
        qos=args.qos,
        version=5 if args.mqtt_version == "5" else 4,
        keepalive=keepalive,
        idle=args.idle,
        connect_batch=args.connect_batch,
    )


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.protocol is None:
        args.protocol = "mqtt" if (args.url or "").startswith("mqtt:") else "amqp"
    mqtt = args.protocol == "mqtt"
    args.url = args.url or (DEFAULT_MQTT_URL if mqtt else DEFAULT_URL)
    if not mqtt and (args.idle or args.qos or args.mqtt_version != "3.1.1"):
        p.error("--idle, --qos and --mqtt-version need --protocol mqtt")
    if mqtt and (args.persistent or args.fanout or args.backlog or args.auto_ack):
        p.error("--persistent, --fanout, --backlog and --auto-ack are AMQP options")
    if args.idle < 0 or args.connect_batch < 1:
        p.error("--idle must not be negative and --connect-batch must be at least 1")
    if args.size < wire.PREFIX_SIZE:
        p.error(f"--size must be at least {wire.PREFIX_SIZE} (sequence number and send time)")
    for name in ("publishers", "consumers", "queues", "prefetch", "fanout", "count", "backlog"):
        if getattr(args, name) < 0:
            p.error(f"--{name} must not be negative")
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    for url in (args.url, args.against):
        try:
            if url is not None:
                MqttUrl.parse(url) if mqtt else BrokerUrl.parse(url)
        except ValueError as exc:
            p.error(str(exc))


def parse_url(url: str) -> BrokerUrl | MqttUrl:
    """An ``amqp://`` or ``mqtt://`` URL (``ValueError`` for anything else)."""
    return MqttUrl.parse(url) if url.startswith("mqtt:") else BrokerUrl.parse(url)


def locate(url: str, pid: int | None) -> tuple[int | None, str]:
    """The broker's pid and how it was found; ``None`` with the reason when it can't be."""
    if pid:
        return pid, f"{pid} (given)"
    parsed = parse_url(url)
    if not is_loopback(parsed.host):
        return None, "n/a (not on this machine; pass --broker-pid/--against-pid)"
    found = find_listener_pid(parsed.port)
    if found is None:
        return None, f"n/a (no readable process listening on port {parsed.port})"
    return found, f"{found} (listening on port {parsed.port})"


def run_rounds(
    scenario: Scenario,
    brokers: Sequence[BrokerRuns],
    rounds: int,
    progress: TextIO | None,
    use_uvloop: bool = True,
) -> None:
    """Every round runs the scenario on each broker in turn: A B A B ..."""
    for index in range(rounds):
        for broker in brokers:
            label = f"{broker.label} {index + 1}/{rounds}" if len(brokers) > 1 or rounds > 1 else ""
            display = Progress(progress, label) if progress is not None else None
            one = dataclasses.replace(scenario, url=broker.url, broker_pid=broker.pid or 0)
            try:
                result = _run_one(one, Monitor(one.broker_pid, display), use_uvloop)
            except (OSError, TimeoutError, BrokerClosed, MqttError) as exc:
                broker.failures.append(f"round {index + 1}: {type(exc).__name__}: {exc}")
            else:
                broker.results.append(result)
            finally:
                if display is not None:
                    display.finish()


def _run_one(scenario: Scenario, monitor: Monitor, use_uvloop: bool) -> Result:
    if isinstance(scenario, MqttScenario):
        return run_mqtt_sync(scenario, monitor, use_uvloop)
    return run_sync(scenario, monitor, use_uvloop)


def half_rate(
    scenario: Scenario, broker: BrokerRuns, progress: TextIO | None, use_uvloop: bool
) -> float | None:
    """Half of the consume rate (the publish rate without consumers) of one unlimited
    run on ``broker``; ``None`` (with the failure recorded) when the run fails."""
    probe = BrokerRuns(broker.label, broker.url, broker.pid, broker.pid_source)
    run_rounds(dataclasses.replace(scenario, rate=0.0), [probe], 1, progress, use_uvloop)
    good = probe.good
    if not good:
        broker.failures += [f"rate probe: {f}" for f in probe.failures]
        broker.failures += [f"rate probe: {e}" for r in probe.results for e in r.errors]
        return None
    maximum = good[0].consume_rate or good[0].publish_rate
    if progress is not None:
        print(f"maximum {maximum:,.0f} msg/s on {broker.label}; latency at half", file=progress)
    return max(round(maximum / 2), 1.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0, 1 when a run reported errors, 2 when no run could finish."""
    p = build_parser()
    args = p.parse_args(argv)
    _check(p, args)
    scenario = scenario_of(args)
    progress = None if args.quiet else sys.stderr
    targets = [("A", args.url, args.broker_pid)]
    if args.against:
        targets.append(("B", args.against, args.against_pid))
    brokers = [BrokerRuns(label, url, *locate(url, pid)) for label, url, pid in targets]
    rounds = args.rounds or (5 if args.against else 1)
    if args.rate == HALF:
        found = half_rate(scenario, brokers[0], progress, not args.no_uvloop)
        if found is None:
            print(table(scenario, brokers, rounds))
            return 2
        scenario = dataclasses.replace(scenario, rate=found)
    run_rounds(scenario, brokers, rounds, progress, not args.no_uvloop)
    if args.json:
        print(json.dumps(to_json(scenario, brokers, rounds), indent=1))
    else:
        print(table(scenario, brokers, rounds))
    if not any(b.results for b in brokers):
        return 2
    failed = any(b.failures or len(b.good) < len(b.results) for b in brokers)
    return 1 if failed else 0
