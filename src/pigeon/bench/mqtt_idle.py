"""Memory per idle connection: open N MQTT connections, read the broker's RSS growth.

The connections are opened ``connect_batch`` at a time (each waits for its
CONNACK), with a long keep-alive so the broker has nothing to do with them but
hold them. The broker's ``VmRSS`` (``/proc/PID/status``) is read before the
first connection and again once it stops moving with all of them open; the
growth divided by N is the cost of one idle connection (socket buffers in the
kernel are not in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
import uuid

from pigeon.bench.monitor import Monitor
from pigeon.bench.mqtt_client import MqttClient, MqttUrl
from pigeon.bench.mqtt_scenario import MqttResult, MqttScenario

SETTLE_S = 1.0  # RSS counts as settled when it moved less than 1% over this long
SETTLE_LIMIT_S = 10.0


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (up to the hard
    limit, where allowed); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def vm_rss_bytes(pid: int) -> int | None:
    """``VmRSS`` of ``/proc/PID/status`` in bytes (``None`` when unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


async def measure_idle(s: MqttScenario, monitor: Monitor) -> MqttResult:
    result = MqttResult(scenario=s)
    url = MqttUrl.parse(s.url)
    limit = raise_open_files(s.idle + 256)
    if limit < s.idle + 64:
        result.errors.append(f"RLIMIT_NOFILE is {limit}: too low for {s.idle:,} connections")
        return result
    run_id = uuid.uuid4().hex[:8]
    clients: list[MqttClient] = []
    monitor.start()
    monitor.phase = "connect"
    monitor.counters = lambda: (len(clients), 0, 0)
    try:
        before = await _settled_rss(s.broker_pid)
        started = time.monotonic()
        await _open(url, s, run_id, clients, result)
        result.connect_rate = round(len(clients) / max(time.monotonic() - started, 1e-9), 1)
        monitor.phase = "idle"
        after = await _settled_rss(s.broker_pid)
        result.idle_connections = sum(c.error is None for c in clients)
        dropped = len(clients) - result.idle_connections
        if dropped:
            result.errors.append(f"{dropped} idle connections were closed by the broker")
        if before is not None and after is not None:
            result.rss_before_mb = round(before / 1e6, 3)
            result.rss_idle_mb = round(after / 1e6, 3)
            result.broker_rss_mb = round(after / 1e6, 1)
    finally:
        monitor.phase = "close"
        for client in clients:
            client.close()
        await monitor.stop()
        if monitor.peak_rss_bytes:
            result.broker_peak_rss_mb = round(monitor.peak_rss_bytes / 1e6, 1)
    return result


async def _open(url: MqttUrl, s: MqttScenario, run_id: str, clients: list[MqttClient],
                result: MqttResult) -> None:  # fmt: skip
    """Connect ``s.idle`` clients, ``s.connect_batch`` at a time; stop at the first
    batch that had a failure (and say why)."""
    for first in range(0, s.idle, s.connect_batch):
        ids = range(first, min(first + s.connect_batch, s.idle))
        batch = await asyncio.gather(
            *(
                MqttClient.connect(
                    url, f"idle-{run_id}-{i}", version=s.version, keepalive=s.keepalive, timeout=30
                )
                for i in ids
            ),
            return_exceptions=True,
        )
        failed = [r for r in batch if isinstance(r, BaseException)]
        clients.extend(r for r in batch if isinstance(r, MqttClient))
        if failed:
            exc = failed[0]
            result.errors.append(
                f"{len(failed)} of connections {first}-{ids[-1]} failed "
                f"({type(exc).__name__}: {exc}); {len(clients):,} open"
            )
            return


async def _settled_rss(pid: int) -> int | None:
    """The broker's RSS once it moved less than 1% within ``SETTLE_S`` (or after
    ``SETTLE_LIMIT_S``, the last reading)."""
    if not pid:
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_LIMIT_S
    last = vm_rss_bytes(pid)
    while last is not None and loop.time() < deadline:
        await asyncio.sleep(SETTLE_S)
        now = vm_rss_bytes(pid)
        if now is None or abs(now - last) < last / 100:
            return now
        last = now
    return last
