"""What ``pigeon bench`` prints: medians per broker and A/B ratios, as a table or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from pigeon.bench.mqtt_scenario import MqttScenario
from pigeon.bench.scenario import Result, Scenario, scenario_dict
from pigeon.bench.stats import median

# (metric key, label, format); a row is shown when some broker has a value for it.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("published_per_s", "published msg/s", "{:,.0f}"),
    ("consumed_per_s", "consumed msg/s", "{:,.0f}"),
    ("confirmed_per_s", "confirmed msg/s", "{:,.0f}"),
    ("published_mb_s", "published MB/s", "{:,.2f}"),
    ("consumed_mb_s", "consumed MB/s", "{:,.2f}"),
    ("fill_per_s", "backlog fill msg/s", "{:,.0f}"),
    ("drain_per_s", "backlog drain msg/s", "{:,.0f}"),
    ("p50_us", "latency p50 µs", "{:,.0f}"),
    ("p90_us", "latency p90 µs", "{:,.0f}"),
    ("p99_us", "latency p99 µs", "{:,.0f}"),
    ("p999_us", "latency p99.9 µs", "{:,.0f}"),
    ("broker_cpu_s", "broker CPU s", "{:,.2f}"),
    ("broker_cores", "broker CPU cores", "{:,.2f}"),
    ("cpu_s_per_million", "broker CPU s per million msgs", "{:,.2f}"),
    ("broker_rss_mb", "broker RSS MB (at end)", "{:,.1f}"),
    ("rss_full_mb", "broker RSS MB (backlog resting)", "{:,.1f}"),
    ("broker_peak_rss_mb", "broker peak RSS MB", "{:,.1f}"),
    ("lost_messages", "QoS 0 messages not delivered", "{:,.0f}"),
    ("idle_connections", "idle connections", "{:,.0f}"),
    ("connects_per_s", "connections opened /s", "{:,.0f}"),
    ("rss_before_mb", "broker RSS MB (no connections)", "{:,.1f}"),
    ("rss_idle_mb", "broker RSS MB (all idle connected)", "{:,.1f}"),
    ("rss_kb_per_connection", "broker RSS kB per idle connection", "{:,.1f}"),
    ("loadgen_cpu_s", "loadgen CPU s", "{:,.2f}"),
    ("loadgen_cores", "loadgen CPU cores", "{:,.2f}"),
)
# Shown although always empty in some modes, so "n/a" says the broker was not readable.
_ALWAYS = {"published_per_s", "consumed_per_s", "broker_cpu_s", "broker_rss_mb"}
_COUNTS = (
    ("published_total", "published (total)"),
    ("consumed_total", "consumed (total)"),
    ("confirmed", "confirmed (total)"),
)


@dataclass
class BrokerRuns:
    """Every run of one scenario against one broker."""

    label: str  # "A" or "B"
    url: str
    pid: int | None
    pid_source: str  # how the pid was found, or why there is none
    results: list[Result] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # runs that could not finish

    @property
    def good(self) -> list[Result]:
        return [r for r in self.results if not r.errors]

    @property
    def attempts(self) -> int:
        return len(self.results) + len(self.failures)

    def medians(self) -> dict[str, float | None]:
        return medians([r.metrics() for r in self.good])

    def median_counts(self) -> dict[str, float | None]:
        return medians([{k: float(r.counts()[k]) for k, _ in _COUNTS} for r in self.good])


def medians(rows: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Per key, the median of the values present (``None`` when no row has one)."""
    keys = [k for row in rows for k in row]
    out: dict[str, float | None] = {}
    for key in dict.fromkeys(keys):
        values = [v for row in rows if (v := row.get(key)) is not None]
        out[key] = median(values) if values else None
    return out


def ratios(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    """A/B for every metric both have (``None`` where either is missing or B is 0)."""
    out: dict[str, float | None] = {}
    for key, value in a.items():
        other = b.get(key)
        out[key] = None if value is None or not other else round(value / other, 3)
    return out


def public_url(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def describe(s: Scenario) -> str:
    """The scenario in one line of words."""
    if isinstance(s, MqttScenario):
        return s.describe()
    if s.backlog:
        kind = "persistent" if s.persistent else "transient"
        return (
            f"backlog: {s.backlog:,} x {s.size} B {kind} messages into one queue "
            f"(confirms, window {s.confirm or 1000}), 1 s rest, then one consumer drains "
            f"(prefetch {s.prefetch}, {'auto' if s.auto_ack else 'manual'} acks)"
        )
    route = f"fanout to {s.fanout} queues" if s.fanout else f"{max(s.queues, 1)} queue(s)"
    parts = [
        f"{s.publishers} publisher(s) -> {route} -> "
        f"{s.fanout or s.consumers} consumer(s), {s.size} B",
        "persistent, durable" if s.persistent else "transient",
        f"confirms (window {s.confirm})" if s.confirm else "no confirms",
        "auto acks" if s.auto_ack else f"manual acks (prefetch {s.prefetch})",
    ]
    if s.rate:
        parts.append(f"rate {s.rate:,.0f} msg/s")
    if s.count:
        parts.append(f"{s.count:,} messages per publisher")
    else:
        parts.append(f"{s.duration:g} s after {s.warmup:g} s warm-up")
    return ", ".join(parts)


def to_json(scenario: Scenario, brokers: Sequence[BrokerRuns], rounds: int) -> dict[str, object]:
    out: dict[str, object] = {
        "scenario": scenario_dict(scenario),
        "rounds": rounds,
        "brokers": [
            {
                "label": b.label,
                "url": public_url(b.url),
                "pid": b.pid,
                "pid_source": b.pid_source,
                "runs": [r.to_dict() for r in b.results],
                "failures": b.failures,
                "median": b.medians(),
            }
            for b in brokers
        ],
        "ratios": None,
    }
    if len(brokers) == 2:
        out["ratios"] = ratios(brokers[0].medians(), brokers[1].medians())
    return out


def table(scenario: Scenario, brokers: Sequence[BrokerRuns], rounds: int) -> str:
    """Aligned plain text: one row per metric, one column per broker, then A/B."""
    meds = [b.medians() for b in brokers]
    counts = [b.median_counts() for b in brokers]
    pair = len(brokers) == 2
    ratio = ratios(meds[0], meds[1]) if pair else {}
    head = ["metric", *(b.label for b in brokers), *(["A/B"] if pair else [])]
    rows = [head, ["runs", *(f"{len(b.good)}/{b.attempts}" for b in brokers), *([""] * pair)]]
    for key, label in _COUNTS:
        rows.append([label, *(_cell(c.get(key), "{:,.0f}") for c in counts), *([""] * pair)])
    for key, label, fmt in ROWS:
        if key not in _ALWAYS and all(m.get(key) is None for m in meds):
            continue
        cells = [_cell(m.get(key), fmt) for m in meds]
        rows.append([label, *cells, *([_cell(ratio.get(key), "{:.2f}")] if pair else [])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        f"pigeon bench: {describe(scenario)}",
        f"medians of {rounds} round(s)" + (", alternating A B A B" if pair else ""),
        *(f"{b.label} = {public_url(b.url)}  (broker pid: {b.pid_source})" for b in brokers),
        "",
    ]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
        )
    for b in brokers:
        lines += [f"{b.label} failed: {text}" for text in b.failures]
        lines += [f"{b.label} error: {e}" for r in b.results for e in r.errors]
    return "\n".join(lines)


def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)
