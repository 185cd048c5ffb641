"""The benchmark harness itself: its hand-built frames, its counting and its stats.

pamqp is the oracle for the bytes; the sink server (``benchmarks.sink``) is the peer
for short real runs, so nothing here needs RabbitMQ or Pigeon.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pamqp import commands, frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # ``bench`` lives at the repository root, not under src/
    sys.path.insert(0, str(REPO))

from benchmarks import sink  # noqa: E402

from pigeon.bench import command, runner, wire  # noqa: E402
from pigeon.bench.publisher import ConfirmTracker  # noqa: E402
from pigeon.bench.scanner import FrameScanner  # noqa: E402
from pigeon.bench.scenario import Scenario  # noqa: E402
from pigeon.bench.stats import median, percentile, summarize_latencies  # noqa: E402
from pigeon.bench.topology import plan  # noqa: E402


def decode_all(data: bytes) -> list[tuple[int, Any]]:
    """Every frame in ``data`` as (channel, pamqp object); fails on leftovers."""
    out = []
    while data:
        used, channel, value = frame.unmarshal(data)
        out.append((channel, value))
        data = data[used:]
    return out


# --- pre-encoded frames, checked with pamqp ----------------------------------


@pytest.mark.parametrize("persistent", [False, True])
def test_publish_template_decodes_as_publish_header_and_body(persistent: bool) -> None:
    template = wire.MessageTemplate.publish(3, "ex", "rk.1", 64, persistent)
    frames = decode_all(bytes(template.batch(7, 1, 123456789)))

    assert [ch for ch, _ in frames] == [3, 3, 3]
    publish, head, body = (value for _, value in frames)
    assert isinstance(publish, commands.Basic.Publish)
    assert (publish.exchange, publish.routing_key) == ("ex", "rk.1")
    assert not publish.mandatory
    assert isinstance(head, ContentHeader)
    assert head.body_size == 64
    assert head.properties.delivery_mode == (2 if persistent else None)
    assert isinstance(body, ContentBody)
    assert len(body.value) == 64
    assert wire.PREFIX.unpack_from(body.value) == (7, 123456789)


def test_batch_numbers_each_copy_and_stamps_one_time() -> None:
    template = wire.MessageTemplate.publish(1, "", "q", 16, False)
    frames = decode_all(bytes(template.batch(100, 5, 42)))

    bodies = [value.value for _, value in frames if isinstance(value, ContentBody)]
    assert [wire.PREFIX.unpack(b) for b in bodies] == [(n, 42) for n in range(100, 105)]


def test_body_larger_than_a_frame_is_split_and_keeps_its_prefix() -> None:
    template = wire.MessageTemplate.publish(1, "", "q", 10_000, False, frame_max=4096)
    frames = decode_all(bytes(template.batch(1, 1, 9)))

    bodies = [value.value for _, value in frames if isinstance(value, ContentBody)]
    assert [len(b) for b in bodies] == [4088, 4088, 1824]
    assert wire.PREFIX.unpack_from(bodies[0]) == (1, 9)


@pytest.mark.parametrize(
    ("encoded", "kind", "fields"),
    [
        (wire.tune_ok(2047, 131072, 0), commands.Connection.TuneOk, {"frame_max": 131072}),
        (wire.connection_open("/v"), commands.Connection.Open, {"virtual_host": "/v"}),
        (wire.connection_close(), commands.Connection.Close, {"reply_code": 200}),
        (wire.channel_open(1), commands.Channel.Open, {}),
        (
            wire.exchange_declare(1, "x", "fanout", True),
            commands.Exchange.Declare,
            {"exchange": "x", "exchange_type": "fanout", "durable": True, "auto_delete": False},
        ),
        (wire.exchange_delete(1, "x"), commands.Exchange.Delete, {"exchange": "x"}),
        (
            wire.queue_declare(1, "q", False),
            commands.Queue.Declare,
            {"queue": "q", "durable": False, "exclusive": False, "auto_delete": False},
        ),
        (
            wire.queue_bind(1, "q", "x", "k"),
            commands.Queue.Bind,
            {"queue": "q", "exchange": "x", "routing_key": "k"},
        ),
        (wire.queue_delete(1, "q"), commands.Queue.Delete, {"queue": "q", "if_empty": False}),
        (wire.basic_qos(1, 300), commands.Basic.Qos, {"prefetch_count": 300}),
        (
            wire.basic_consume(1, "q", "t", no_ack=False),
            commands.Basic.Consume,
            {"queue": "q", "consumer_tag": "t", "no_ack": False},
        ),
        (wire.basic_ack(1, 2**40, True), commands.Basic.Ack, {"delivery_tag": 2**40}),
        (wire.confirm_select(1), commands.Confirm.Select, {"nowait": False}),
    ],
)
def test_setup_frames_decode_with_pamqp(encoded: bytes, kind: type, fields: dict[str, Any]) -> None:
    ((_, value),) = decode_all(encoded)

    assert isinstance(value, kind)
    for name, expected in fields.items():
        assert getattr(value, name) == expected


def test_start_ok_carries_plain_credentials() -> None:
    ((channel, value),) = decode_all(wire.start_ok("guest", "secret"))

    assert channel == 0
    assert isinstance(value, commands.Connection.StartOk)
    assert value.mechanism == "PLAIN"
    assert value.response == "\x00guest\x00secret"
    assert value.client_properties["product"] == "pigeon-bench"


# --- the deliver-side scanner, fed with pamqp-built bytes --------------------


def delivery(tag: int, seq: int, sent_ns: int, size: int = 32) -> bytes:
    body = wire.PREFIX.pack(seq, sent_ns) + bytes(size - wire.PREFIX_SIZE)
    parts = [
        commands.Basic.Deliver("ctag", tag, False, "", "q"),
        ContentHeader(0, size, commands.Basic.Properties()),
        ContentBody(body),
    ]
    return b"".join(frame.marshal(part, 1) for part in parts)


def test_scanner_counts_deliveries_and_times_them_whatever_the_split() -> None:
    stream = b"".join(delivery(tag, tag * 10, 1_000 + tag) for tag in range(1, 6))
    for chunk in (len(stream), 7, 1):
        scanner = FrameScanner(lambda *a: None, lambda *a: None)
        for start in range(0, len(stream), chunk):
            scanner.feed(stream[start : start + chunk], 5_000)

        assert scanner.delivered == 5
        assert scanner.last_tag == 5
        assert scanner.last_seq == 50
        assert list(scanner.latencies) == [5_000 - (1_000 + t) for t in range(1, 6)]


def test_scanner_times_only_messages_sent_inside_the_window() -> None:
    scanner = FrameScanner(lambda *a: None, lambda *a: None)
    scanner.record_from_ns, scanner.record_until_ns = 100, 200
    scanner.feed(b"".join(delivery(t, t, sent) for t, sent in enumerate([50, 100, 199, 200])), 300)

    assert scanner.delivered == 4
    assert list(scanner.latencies) == [200, 101]


def test_scanner_hands_confirms_and_other_methods_to_callbacks() -> None:
    methods: list[tuple[int, tuple[int, int], bytes]] = []
    confirms: list[tuple[int, bool, bool]] = []
    scanner = FrameScanner(lambda *a: methods.append(a), lambda *a: confirms.append(a))
    scanner.feed(
        frame.marshal(commands.Basic.Ack(9, True), 1)
        + frame.marshal(commands.Basic.Nack(10, False), 1)
        + frame.marshal(commands.Queue.DeclareOk("q", 3, 1), 1),
        0,
    )

    assert confirms == [(9, True, False), (10, False, True)]
    assert methods == [(1, wire.QUEUE_DECLARE_OK, b"\x01q\x00\x00\x00\x03\x00\x00\x00\x01")]
    assert scanner.delivered == 0


# --- stats --------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))

    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile([7], 1) == 7
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile([1, 2, 3, 4], 51) == 3


def test_percentile_rejects_empty_input_and_bad_ranks() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 0)


def test_median_and_latency_summary() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    summary = summarize_latencies([4000, 1000, 3000, 2000])
    assert summary is not None
    assert (summary.count, summary.p50_us, summary.p99_us, summary.max_us) == (4, 2, 4, 4)
    assert summary.mean_us == 2.5
    assert summarize_latencies([]) is None


def test_confirm_tracker_handles_single_out_of_order_and_multiple_acks() -> None:
    tracker = ConfirmTracker()

    assert tracker.confirm(3, False, False) == 1
    assert tracker.confirm(1, False, False) == 1
    assert tracker.watermark == 1
    assert tracker.confirm(5, True, False) == 3  # 2, 4 and 5; 3 was already in
    assert tracker.confirm(5, True, False) == 0
    assert tracker.confirm(6, False, True) == 1
    assert (tracker.watermark, tracker.confirmed, tracker.nacked) == (6, 5, 1)


# --- topology and guard rails --------------------------------------------------


def test_fanout_plan_routes_every_publisher_to_every_queue() -> None:
    topo = plan(Scenario(publishers=2, fanout=4), "p")

    assert topo.exchange == "p-fanout"
    assert topo.queues == ["p-q0", "p-q1", "p-q2", "p-q3"]
    assert topo.targets == [("p-fanout", "")] * 2
    assert topo.routes == [topo.queues, topo.queues]


def test_queue_plan_spreads_publishers_and_consumers_round_robin() -> None:
    topo = plan(Scenario(publishers=3, consumers=2, queues=2), "p")

    assert topo.targets == [("", "p-q0"), ("", "p-q1"), ("", "p-q0")]
    assert topo.consumer_queues == ["p-q0", "p-q1"]


def test_cli_fanout_sets_one_consumer_per_queue() -> None:
    args = command.build_parser().parse_args(["--fanout", "4", "--confirm", "--json"])
    scenario = command.scenario_of(args)

    assert (scenario.fanout, scenario.queues, scenario.consumers) == (4, 4, 4)
    assert scenario.confirm == 128
    assert not scenario.auto_ack
    assert args.json


BROKER_PACKAGES = (
    "core",
    "protocols",
    "storage",
    "broker",
    "admin",
    "auth",
    "embedded",
    "transport",
)


def test_load_generator_does_not_import_the_broker() -> None:
    code = (
        "import sys, pigeon.bench.command, benchmarks.sink\n"
        "print(sorted(m for m in sys.modules if m.startswith('pigeon')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = ast.literal_eval(out.stdout)
    assert "pigeon.bench.runner" in loaded
    assert [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in BROKER_PACKAGES] == []


def test_the_pigeon_command_imports_the_load_generator_only_for_bench() -> None:
    code = "import sys, pigeon.cli; print([m for m in sys.modules if m.startswith('pigeon.bench')])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- short real runs against the sink -------------------------------------------


@pytest.mark.parametrize("confirm", [0, 64])
async def test_run_against_sink_publishes_exactly_count(confirm: int) -> None:
    async with sink.serve() as server:
        scenario = Scenario(
            url=server.url, publishers=2, consumers=0, count=3000, confirm=confirm, duration=5
        )
        result = await runner.run(scenario)

        assert result.errors == []
        assert result.published_total == 6000
        assert server.stats.published == 6000
        assert result.confirmed == (6000 if confirm else 0)
        assert result.drained


async def test_rate_limit_holds_the_publish_rate() -> None:
    async with sink.serve() as server:
        scenario = Scenario(url=server.url, consumers=0, rate=2000, duration=0.5)
        result = await runner.run(scenario)

    # 2,000 msg/s for 0.5 s, plus the one message allowed at t=0.
    assert 990 <= result.published_total <= 1002


async def test_consume_run_against_flooding_sink_counts_and_times_deliveries() -> None:
    async with sink.serve(flood_size=16) as server:
        scenario = Scenario(url=server.url, publishers=0, consumers=1, duration=0.3)
        result = await runner.run(scenario)

    assert result.errors == []
    assert result.consumed > 0
    assert result.latency is not None
    assert 0 < result.latency.count <= result.consumed_total
