"""What a benchmark run does (``Scenario``) and what it measured (``Result``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pigeon.bench.stats import LatencySummary

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class Scenario:
    url: str = DEFAULT_URL
    publishers: int = 1
    consumers: int = 1
    queues: int = 1
    size: int = 16
    persistent: bool = False  # durable queues and delivery mode 2
    confirm: int = 0  # in-flight window per publisher; 0 means no publisher confirms
    prefetch: int = 200
    auto_ack: bool = False  # False: manual acks, multiple=True every prefetch/2
    fanout: int = 0  # >0: one fanout exchange to this many queues, one consumer each
    duration: float = 10.0
    warmup: float = 0.0
    rate: float = 0.0  # total msg/s over all publishers; 0 = unlimited
    count: int = 0  # >0: each publisher stops after this many messages (a closed run)
    drain: float = 10.0
    backlog: int = 0  # >0: fill this many messages, rest, then drain with one consumer
    broker_pid: int = 0  # 0: broker CPU and RSS are not measured


@dataclass
class Result:
    """One run's numbers. Rates are over the measured window; ``None`` means n/a."""

    scenario: Scenario
    window_s: float = 0.0
    published: int = 0
    consumed: int = 0
    published_total: int = 0
    consumed_total: int = 0
    confirmed: int = 0
    nacked: int = 0
    expected_total: int = 0
    drained: bool = False
    publish_rate: float = 0.0
    consume_rate: float = 0.0
    confirm_rate: float = 0.0
    publish_mb_s: float = 0.0
    consume_mb_s: float = 0.0
    latency: LatencySummary | None = None
    broker_cpu_s: float | None = None
    broker_rss_mb: float | None = None
    broker_peak_rss_mb: float | None = None
    loadgen_cpu_s: float = 0.0
    # Backlog mode only.
    fill_rate: float | None = None
    drain_rate: float | None = None
    rss_full_mb: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def broker_cores(self) -> float | None:
        if self.broker_cpu_s is None:
            return None
        return self.broker_cpu_s / max(self.window_s, 1e-9)

    @property
    def messages(self) -> int:
        """Messages that went through the broker in the window: deliveries when there
        are consumers (a fan-out delivery counts once per queue), else publishes."""
        if self.scenario.backlog:
            return self.consumed
        return self.consumed if self.consumed else self.published

    @property
    def cpu_s_per_million(self) -> float | None:
        if self.broker_cpu_s is None or not self.messages:
            return None
        return self.broker_cpu_s / self.messages * 1e6

    def metrics(self) -> dict[str, float | None]:
        """The numbers medians and ratios are taken of, by name."""
        lat = self.latency
        return {
            "published_per_s": self.publish_rate,
            "consumed_per_s": self.consume_rate,
            "confirmed_per_s": self.confirm_rate,
            "published_mb_s": self.publish_mb_s,
            "consumed_mb_s": self.consume_mb_s,
            "fill_per_s": self.fill_rate,
            "drain_per_s": self.drain_rate,
            "p50_us": lat.p50_us if lat else None,
            "p90_us": lat.p90_us if lat else None,
            "p99_us": lat.p99_us if lat else None,
            "p999_us": lat.p999_us if lat else None,
            "broker_cpu_s": self.broker_cpu_s,
            "broker_cores": _round(self.broker_cores, 3),
            "cpu_s_per_million": _round(self.cpu_s_per_million, 3),
            "broker_rss_mb": self.broker_rss_mb,
            "broker_peak_rss_mb": self.broker_peak_rss_mb,
            "rss_full_mb": self.rss_full_mb,
            "loadgen_cpu_s": self.loadgen_cpu_s,
            "loadgen_cores": round(self.loadgen_cpu_s / max(self.window_s, 1e-9), 3),
        }

    def counts(self) -> dict[str, int | float | bool]:
        return {
            "window_s": self.window_s,
            "published": self.published,
            "consumed": self.consumed,
            "published_total": self.published_total,
            "consumed_total": self.consumed_total,
            "confirmed": self.confirmed,
            "nacked": self.nacked,
            "expected_total": self.expected_total,
            "drained": self.drained,
        }

    def to_dict(self) -> dict[str, object]:
        """One flat JSON object: counts, metrics, latency sample count and errors."""
        return {
            **self.counts(),
            **self.metrics(),
            "latency_samples": self.latency.count if self.latency else 0,
            "errors": list(self.errors),
        }


def scenario_dict(scenario: Scenario) -> dict[str, object]:
    """The scenario without where it ran (URL and pid belong to each broker)."""
    out = asdict(scenario)
    del out["url"], out["broker_pid"]
    return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
