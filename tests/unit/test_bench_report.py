"""The pure parts of ``pigeon bench``: percentiles, medians and ratios, the table and
JSON it prints, the progress line, and reading listeners from /proc/net/tcp text."""

from __future__ import annotations

import io
import ipaddress
import json
import os

import pytest
from pamqp import commands, frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from pigeon.bench import wire
from pigeon.bench.command import locate
from pigeon.bench.monitor import Tick
from pigeon.bench.process import is_loopback, parse_listeners, sample_process
from pigeon.bench.progress import Progress, format_tick
from pigeon.bench.report import BrokerRuns, medians, public_url, ratios, table, to_json
from pigeon.bench.scanner import FrameScanner
from pigeon.bench.scenario import Result, Scenario
from pigeon.bench.stats import summarize_latencies


def deliveries(sent_times_ns: list[int]) -> bytes:
    out = b""
    for tag, sent in enumerate(sent_times_ns, start=1):
        body = wire.PREFIX.pack(tag, sent)
        out += frame.marshal(commands.Basic.Deliver("c", tag, False, "", "q"), 1)
        out += frame.marshal(ContentHeader(0, len(body), commands.Basic.Properties()), 1)
        out += frame.marshal(ContentBody(body), 1)
    return out


def test_latency_percentiles_of_synthetic_timestamps_are_nearest_rank() -> None:
    # 2,000 messages all read at t = 10 s, sent 1..2000 µs earlier (shuffled order).
    now = 10_000_000_000
    waits_us = [(i * 7919) % 2000 + 1 for i in range(2000)]
    scanner = FrameScanner(lambda *a: None, lambda *a: None)
    scanner.feed(deliveries([now - w * 1000 for w in waits_us]), now)

    summary = summarize_latencies(scanner.latencies)

    assert summary is not None
    assert sorted(waits_us) == list(range(1, 2001))
    # Nearest rank: p of 2000 values is the ceil(p/100 * 2000)-th smallest.
    assert (summary.p50_us, summary.p90_us, summary.p99_us) == (1000, 1800, 1980)
    assert summary.p999_us == 1998
    assert summary.max_us == 2000
    assert summary.count == 2000


def result(rate: float, p99: float | None, cpu: float | None, rss: float | None) -> Result:
    r = Result(scenario=Scenario(), window_s=2.0, published=int(rate * 2),
               consumed=int(rate * 2), publish_rate=rate, consume_rate=rate,
               broker_cpu_s=cpu, broker_rss_mb=rss)  # fmt: skip
    if p99 is not None:
        r.latency = summarize_latencies([int(p99 * 1000)])
    return r


def test_medians_skip_missing_values_and_ratios_need_both_sides() -> None:
    rows = [{"a": 1.0, "b": None}, {"a": 3.0, "b": None}, {"a": 2.0, "b": None}]

    assert medians(rows) == {"a": 2.0, "b": None}
    assert ratios({"x": 10.0, "y": 1.0, "z": None}, {"x": 4.0, "y": 0.0, "z": 3.0}) == {
        "x": 2.5,
        "y": None,
        "z": None,
    }


def test_cpu_per_million_counts_deliveries_and_cores_divide_by_the_window() -> None:
    r = result(50_000, None, cpu=1.5, rss=100.0)

    metrics = r.metrics()

    assert metrics["broker_cores"] == 0.75
    assert metrics["cpu_s_per_million"] == 15.0  # 1.5 s over 100,000 deliveries
    assert result(1, None, cpu=None, rss=None).metrics()["cpu_s_per_million"] is None


def two_brokers() -> list[BrokerRuns]:
    a = BrokerRuns("A", "amqp://guest:secret@127.0.0.1:5672/", 11, "11 (given)")
    b = BrokerRuns("B", "amqp://guest:guest@127.0.0.1:5673/", None, "n/a (test)")
    a.results = [result(100, 2000, 2.0, 200.0), result(300, 4000, 4.0, 220.0)]
    b.results = [result(50, 1000, None, None), result(50, 1000, None, None)]
    b.failures = ["round 3: OSError: refused"]
    return [a, b]


def test_json_has_per_broker_runs_medians_and_a_over_b_ratios() -> None:
    out = json.loads(json.dumps(to_json(Scenario(size=64), two_brokers(), 2)))

    assert out["rounds"] == 2
    assert out["scenario"]["size"] == 64
    assert "url" not in out["scenario"]
    a, b = out["brokers"]
    assert (a["label"], a["url"], a["pid"]) == ("A", "amqp://guest@127.0.0.1:5672/", 11)
    assert len(a["runs"]) == 2 and a["runs"][0]["published_per_s"] == 100
    assert a["median"]["published_per_s"] == 200
    assert a["median"]["p99_us"] == 3000
    assert b["median"]["broker_rss_mb"] is None
    assert b["failures"] == ["round 3: OSError: refused"]
    assert out["ratios"]["published_per_s"] == 4.0
    assert out["ratios"]["p99_us"] == 3.0
    assert out["ratios"]["broker_rss_mb"] is None


def test_json_of_one_broker_has_no_ratios() -> None:
    out = to_json(Scenario(), two_brokers()[:1], 2)

    assert out["ratios"] is None


def test_table_aligns_columns_and_says_n_a_for_what_it_could_not_read() -> None:
    text = table(Scenario(), two_brokers(), 2)
    lines = text.splitlines()
    rows = {line.split("  ")[0]: line for line in lines if "  " in line}

    assert "secret" not in text
    assert rows["published msg/s"].split()[-3:] == ["200", "50", "4.00"]
    assert rows["broker RSS MB (at end)"].split()[-3:] == ["210.0", "n/a", "n/a"]
    assert rows["runs"].split()[-2:] == ["2/2", "2/3"]
    metric_rows = [line for line in lines if line.startswith(("published msg/s", "consumed MB/s"))]
    assert len({len(line) for line in metric_rows}) == 1  # right-aligned to one width
    assert "B failed: round 3: OSError: refused" in lines


def test_public_url_drops_only_the_password() -> None:
    assert public_url("amqp://u:p@127.0.0.1:5673/v") == "amqp://u@127.0.0.1:5673/v"
    assert public_url("amqp://127.0.0.1/") == "amqp://127.0.0.1/"


TICK = Tick(elapsed_s=3.0, phase="measure", published_per_s=45_000, consumed_per_s=44_000,
            in_flight=128, broker_cores=None)  # fmt: skip


def test_progress_line_shows_phase_rates_in_flight_and_cpu() -> None:
    line = format_tick(TICK, "A 1/5")

    assert line.startswith("A 1/5")
    for part in ("3.0 s", "measure", "45,000/s", "44,000/s", "in-flight    128", "CPU n/a"):
        assert part in line


def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_elsewhere() -> None:
    tty, pipe = io.StringIO(), io.StringIO()
    on_tty, on_pipe = Progress(tty, tty=True), Progress(pipe, tty=False)
    for display in (on_tty, on_pipe):
        display(TICK)
        display(Tick(4.0, "drain", 0, 10, 0, 0.5))
        display.finish()

    assert tty.getvalue().count("\r") == 2 and tty.getvalue().count("\n") == 1
    assert pipe.getvalue().count("\n") == 2 and "\r" not in pipe.getvalue()
    assert "0.50 cores" in pipe.getvalue().splitlines()[1]


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1
   1: 0100007F:1628 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000001000000:1629 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99 1
"""  # noqa: E501


def test_parse_listeners_reads_listen_sockets_only_with_address_port_and_inode() -> None:
    found = parse_listeners(PROC_NET_TCP)
    v6 = parse_listeners(PROC_NET_TCP6)

    assert [(str(x.address), x.port, x.inode) for x in found] == [
        ("127.0.0.1", 5672, 4242),
        ("0.0.0.0", 22, 77),
    ]
    assert [(x.address, x.port, x.inode) for x in v6] == [(ipaddress.ip_address("::1"), 5673, 99)]


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("192.0.2.1") and not is_loopback("broker.example")


def test_a_remote_broker_is_allowed_but_its_cpu_and_rss_are_n_a() -> None:
    assert locate("amqp://guest:guest@192.0.2.1:5672/", None) == (
        None,
        "n/a (not on this machine; pass --broker-pid/--against-pid)",
    )
    assert locate("amqp://192.0.2.1/", 77) == (77, "77 (given)")


def test_sampling_a_process_that_is_gone_gives_none() -> None:
    assert sample_process(os.getpid()) is not None
    assert sample_process(2**22 + 12345) is None


@pytest.mark.parametrize("argv", [["--size", "8"], ["--rounds", "0"], ["ftp://x/"]])
def test_command_rejects_bad_options(argv: list[str]) -> None:
    from pigeon.bench.command import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
