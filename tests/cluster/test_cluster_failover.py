"""Failover with a Jepsen-style checker (issue 16, "How it is tested").

Three JetStream servers and two Pigeon nodes (child processes, ``pigeon serve
--cluster``) on loopback; publishers with confirms and consumers with manual acks on
both nodes, which reconnect to a surviving node when theirs goes away. While they
work: kill -9 a nats-server (not the meta leader), then a Pigeon node, then the
stream leader of the busiest queue. Afterwards (queues drained) the checker of
``jepsen.py`` demands zero confirmed messages lost and every duplicate delivery
flagged ``redelivered``; the counts and failover times are printed (and kept in
docs/cluster.md, "Failover, measured").

The long mode (``--cluster-cycles N``, or ``--run-slow`` for 5 cycles) repeats the
faults N times and adds partitions (the busiest stream's leader stopped with SIGSTOP
for a few seconds, then continued) and the loss of the busiest queue's consumer
leader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .failover_run import FailoverRun
from .jepsen import summary

PAUSE = 4.0  # seconds a nats-server stays stopped in the long mode's partitions


@pytest.fixture
async def run(nats_binary: Path, tmp_path: Path) -> AsyncIterator[FailoverRun]:
    run = FailoverRun(tmp_path, nats_binary)
    try:
        await run.start()
        yield run
    finally:
        run.stop()


def _show(run: FailoverRun, capsys: pytest.CaptureFixture[str], title: str) -> None:
    report, times = run.verdict()
    lines = [title, *report.lines(), *(t.line() for t in times)]
    if len(times) > 3:
        lines += summary(times)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert report.ok, "\n".join(report.lines())
    assert report.confirmed > 0 and report.delivered >= report.confirmed
    assert not run.node_errors(), "\n".join(run.node_errors())


@pytest.mark.timeout(240)
async def test_no_confirmed_message_is_lost_through_three_kills(
    run: FailoverRun, capsys: pytest.CaptureFixture[str]
) -> None:
    run.start_clients()
    await run.warm_up()

    index = await run.kill_nats_server()
    await run.recovered(run.history.faults[-1])
    await run.restart_nats_server(index)

    await run.kill_node(1)
    await run.recovered(run.history.faults[-1])
    await run.restart_node(1)

    index = await run.kill_stream_leader()
    await run.recovered(run.history.faults[-1])
    await run.restart_nats_server(index)

    await run.drain()
    _show(run, capsys, "failover: three kills")


@pytest.fixture
def cycles(request: pytest.FixtureRequest) -> int:
    count = int(request.config.getoption("--cluster-cycles") or 0)
    if not count and request.config.getoption("--run-slow"):
        count = 5
    if not count:
        pytest.skip("long mode: pass --cluster-cycles N (or --run-slow for 5)")
    return count


@pytest.mark.timeout(0)
async def test_many_cycles_of_kills_and_partitions(
    cycles: int, run: FailoverRun, capsys: pytest.CaptureFixture[str]
) -> None:  # (cycles first: skipped before the cluster starts)
    run.start_clients()
    await run.warm_up()
    for cycle in range(1, cycles + 1):
        label = f" #{cycle}"
        index = await run.kill_nats_server(label)
        await run.recovered(run.history.faults[-1])
        await run.restart_nats_server(index)

        index = await run.pause_stream_leader(label)
        paused = run.history.faults[-1]
        await run.recovered(paused)  # served by the others while it is stopped
        # The partition lasts at least this long (a duration, not a wait for a state).
        await asyncio.sleep(max(0.0, paused.at + PAUSE - time.monotonic()))
        run.servers.resume(index)
        await run.caught_up()

        node = cycle % 2
        await run.kill_node(node, label)
        await run.recovered(run.history.faults[-1])
        await run.restart_node(node)

        index = await run.kill_stream_leader(label)
        await run.recovered(run.history.faults[-1])
        await run.restart_nats_server(index)

        index = await run.kill_consumer_leader(label)
        await run.recovered(run.history.faults[-1])
        await run.restart_nats_server(index)
    await run.drain(timeout=120.0)
    _show(run, capsys, f"failover: {cycles} cycles of kills and partitions")
