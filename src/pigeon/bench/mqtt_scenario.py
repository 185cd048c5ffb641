"""What an MQTT benchmark run does (``MqttScenario``) and what it measured (``MqttResult``).

They extend the AMQP ``Scenario`` and ``Result`` so that reporting, medians and
A/B ratios are shared. Fields map as: ``queues`` = topics (publisher i sends to
topic i mod topics, subscriber j reads topic j mod topics), ``consumers`` =
subscribers, ``confirm`` = the QoS 1 inflight window per publisher.
"""

from __future__ import annotations

from dataclasses import dataclass

from pigeon.bench.scenario import Result, Scenario

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_WINDOW = 128


@dataclass(frozen=True)
class MqttScenario(Scenario):
    url: str = DEFAULT_MQTT_URL
    qos: int = 0  # publishes and subscriptions
    version: int = 4  # protocol level: 4 = 3.1.1, 5 = 5.0
    keepalive: int = 60
    idle: int = 0  # >0: open this many idle connections and measure the broker's RSS
    connect_batch: int = 250  # idle mode: connections opened concurrently

    @property
    def topics(self) -> int:
        return max(self.queues, 1)

    @property
    def window(self) -> int:
        return (self.confirm or DEFAULT_WINDOW) if self.qos else 0

    def describe(self) -> str:
        version = "5.0" if self.version == 5 else "3.1.1"
        if self.idle:
            return (
                f"MQTT {version}: {self.idle:,} idle connections (keep-alive "
                f"{self.keepalive} s, {self.connect_batch} at a time); broker RSS growth"
            )
        parts = [
            f"MQTT {version}: {self.publishers} publisher(s) -> {self.topics} topic(s) -> "
            f"{self.consumers} subscriber(s), {self.size} B, QoS {self.qos}",
        ]
        if self.qos:
            parts.append(f"inflight window {self.window}")
        if self.rate:
            parts.append(f"rate {self.rate:,.0f} msg/s")
        if self.count:
            parts.append(f"{self.count:,} messages per publisher")
        else:
            parts.append(f"{self.duration:g} s after {self.warmup:g} s warm-up")
        return ", ".join(parts)


@dataclass
class MqttResult(Result):
    """A run's numbers plus, in idle mode, the connections and the broker's RSS growth."""

    lost: int | None = None  # QoS 0: messages that never arrived (None: not known)
    idle_connections: int = 0
    connect_rate: float | None = None
    rss_before_mb: float | None = None
    rss_idle_mb: float | None = None

    @property
    def rss_kb_per_connection(self) -> float | None:
        if self.rss_before_mb is None or self.rss_idle_mb is None or not self.idle_connections:
            return None
        return round((self.rss_idle_mb - self.rss_before_mb) * 1e3 / self.idle_connections, 2)

    def metrics(self) -> dict[str, float | None]:
        out = super().metrics()
        if not getattr(self.scenario, "qos", 0):
            out["confirmed_per_s"] = None  # QoS 0 has no PUBACKs: n/a, not 0
        out["lost_messages"] = None if self.lost is None else float(self.lost)
        if self.scenario_idle:
            out.update(
                {
                    "idle_connections": float(self.idle_connections),
                    "connects_per_s": self.connect_rate,
                    "rss_before_mb": self.rss_before_mb,
                    "rss_idle_mb": self.rss_idle_mb,
                    "rss_kb_per_connection": self.rss_kb_per_connection,
                }
            )
        return out

    @property
    def scenario_idle(self) -> int:
        return getattr(self.scenario, "idle", 0)
