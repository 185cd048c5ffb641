"""The ``pigeon`` command."""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pigeon import logs
from pigeon.admin import ctl as admin_ctl
from pigeon.config import Config, ConfigError, load
from pigeon.errors import MissingPackage
from pigeon.storage.crypto import WrongKey
from pigeon.storage.sqlite import NewerFormat, StoreLocked
from pigeon.version import __version__

log = logging.getLogger("pigeon")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pigeon", description="Pigeon message broker")
    parser.add_argument("--version", action="version", version=f"pigeon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the broker")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="AMQP port; 0 picks a free one (default 5672)")
    serve.add_argument("--data-dir", help="where data is kept (default ./pigeon-data)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-json",
        action="store_const",
        const=True,
        default=None,
        help="log one JSON object per line",
    )
    serve.add_argument(
        "--unsafe-no-fsync",
        action="store_true",
        help="confirm without waiting for the disk (throwaway brokers only)",
    )
    serve.add_argument(
        "--management-port",
        type=int,
        help="management HTTP port; 0 picks a free one (default 15672)",
    )
    serve.add_argument(
        "--no-management", action="store_true", help="run without the management listener"
    )
    serve.add_argument("--mqtt-port", type=int, help="MQTT port; 0 picks a free one (default 1883)")
    serve.add_argument("--no-mqtt", action="store_true", help="run without the MQTT listener")
    serve.add_argument(
        "--mqtt-ws-port",
        type=int,
        help="MQTT over WebSocket (path /ws) port; 0 picks a free one (default 15675)",
    )
    serve.add_argument("--no-mqtt-ws", action="store_true", help="run without MQTT over WebSocket")
    serve.add_argument(
        "--mqtt-tls-port",
        type=int,
        help="MQTT over TLS port, with the TLS certificate settings; 0 picks a free one "
        "(default 8883)",
    )
    serve.add_argument(
        "--mqtt-wss-port",
        type=int,
        help="MQTT over secure WebSocket (path /ws) port, with the TLS certificate "
        "settings; 0 picks a free one (default 15676)",
    )
    _cluster_options(serve)
    admin_ctl.add_parser(commands)
    _cluster_parser(commands)
    # The bench command parses its own options (pigeon.bench.command), imported only
    # when it runs: ``pigeon serve`` does not pay for the load generator.
    bench = commands.add_parser(
        "bench", help="benchmark an AMQP 0-9-1 broker (--help)", add_help=False, prefix_chars="\0"
    )
    bench.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def _cluster_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from pigeon.cluster.up import add_parser
    except ImportError:  # no cluster extra: the command says how to get it when run
        commands.add_parser("cluster", help="run a local cluster (pip install pigeon[cluster])")
        return
    add_parser(commands)


def _cluster_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--cluster", help="join a NATS JetStream cluster: nats://HOST:PORT[,nats://...]"
    )
    serve.add_argument(
        "--cluster-monitor",
        help="the NATS servers' monitoring URLs (http://HOST:PORT[,...]), to read durability",
    )
    serve.add_argument(
        "--node-name", help="this node's name (default in a cluster: pigeon-PORT@HOSTNAME)"
    )


async def _serve(config: Config) -> None:
    from pigeon.broker import Broker

    broker = Broker(config)
    loop = asyncio.get_running_loop()
    # Before start: a signal that arrives as soon as the port is announced must still
    # mean a graceful stop, not a KeyboardInterrupt.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, functools.partial(_stop, broker, signum))
    await broker.start()
    _tune_gc()
    await broker.wait_stopped()


# Objects allocated between two young-generation collections. Python's default (700)
# collects every couple of hundred messages, and each message in flight survives to the
# older generations; with this threshold most messages are acked and freed (by reference
# counting) before the collector ever looks at them.
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """Garbage-collector settings for a broker process (not for an embedded broker:
    those belong to the application).

    ``gc.freeze`` moves everything loaded at start-up (modules, the management app:
    tens of thousands of objects) out of the collector's sight, so a full collection
    no longer costs ~10 ms of the event loop's time: a latency spike for every client.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _stop(broker: object, signum: int) -> None:
    from pigeon.broker import Broker

    assert isinstance(broker, Broker)
    log.info("received %s, shutting down", signal.Signals(signum).name)
    asyncio.get_running_loop().create_task(broker.stop())


def _run(config: Config) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(config))
    else:
        uvloop.run(_serve(config))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench":
        from pigeon.bench.command import main as bench_main

        return bench_main(args.arguments)
    if args.command == "ctl":
        return admin_ctl.main(args)
    if args.command == "cluster":
        try:
            from pigeon.cluster.up import main as cluster_main
        except ImportError:
            print("pigeon cluster: pip install 'pigeon-broker[cluster]'", file=sys.stderr)
            return 2
        return cluster_main(args)
    if args.command == "serve":
        overrides = {
            "host": args.host,
            "port": args.port,
            "data_dir": args.data_dir,
            "log_level": args.log_level,
            "log_json": args.log_json,
            "management_port": args.management_port,
            "mqtt_port": args.mqtt_port,
            "mqtt_ws_port": args.mqtt_ws_port,
            "mqtt_tls_port": args.mqtt_tls_port,
            "mqtt_wss_port": args.mqtt_wss_port,
            "cluster": args.cluster,
            "cluster_monitor": args.cluster_monitor,
            "node_name": args.node_name,
        }
        try:
            config = load(args.config, overrides=overrides)
            if args.no_management:
                config = config.with_values({"management_port": "off"})
            if args.no_mqtt:
                config = config.with_values({"mqtt_port": "off"})
            if args.no_mqtt_ws:
                config = config.with_values({"mqtt_ws_port": "off"})
            if args.unsafe_no_fsync:
                config = config.with_values({"fsync": False})
        except (ConfigError, OSError) as error:
            print(f"pigeon: {getattr(error, 'text', error)}", file=sys.stderr)
            return 2
        logs.setup(config.log_level, config.log_json)
        try:
            _run(config)
        except (OSError, StoreLocked, NewerFormat, WrongKey, ConfigError, MissingPackage) as error:
            log.error("cannot start: %s", getattr(error, "text", error))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
