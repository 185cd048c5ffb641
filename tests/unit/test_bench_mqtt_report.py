"""What an MQTT bench run reports: its description, per-connection memory, n/a values."""

from __future__ import annotations

from pigeon.bench.mqtt_scenario import MqttResult, MqttScenario
from pigeon.bench.report import BrokerRuns, describe, table


def test_describe_throughput_and_idle() -> None:
    s = MqttScenario(publishers=4, consumers=4, queues=4, size=1024, qos=1, confirm=64)
    assert describe(s) == (
        "MQTT 3.1.1: 4 publisher(s) -> 4 topic(s) -> 4 subscriber(s), 1024 B, QoS 1, "
        "inflight window 64, 10 s after 0 s warm-up"
    )
    idle = MqttScenario(idle=10_000, keepalive=3600, version=5)
    assert describe(idle).startswith("MQTT 5.0: 10,000 idle connections (keep-alive 3600 s")


def test_qos1_window_defaults_to_128_and_qos0_has_none() -> None:
    assert MqttScenario(qos=1).window == 128
    assert MqttScenario(qos=0, confirm=64).window == 0


def test_rss_per_idle_connection() -> None:
    r = MqttResult(MqttScenario(idle=1000), idle_connections=1000)
    r.rss_before_mb, r.rss_idle_mb = 10.0, 14.5
    metrics = r.metrics()
    assert metrics["rss_kb_per_connection"] == 4.5
    assert metrics["idle_connections"] == 1000


def test_no_puback_rate_at_qos0_and_no_lost_count_at_qos1() -> None:
    qos0 = MqttResult(MqttScenario(qos=0), lost=3).metrics()
    assert qos0["confirmed_per_s"] is None
    assert qos0["lost_messages"] == 3
    qos1 = MqttResult(MqttScenario(qos=1), confirm_rate=5.0).metrics()
    assert qos1["confirmed_per_s"] == 5.0
    assert qos1["lost_messages"] is None
    assert "rss_kb_per_connection" not in qos1


def test_table_shows_the_idle_rows() -> None:
    s = MqttScenario(idle=10)
    r = MqttResult(s, idle_connections=10, connect_rate=100.0)
    r.rss_before_mb, r.rss_idle_mb = 1.0, 1.01
    runs = BrokerRuns("A", "mqtt://127.0.0.1:1883", None, "n/a", results=[r])
    text = table(s, [runs], 1)
    assert "broker RSS kB per idle connection" in text
    assert "idle connections" in text
