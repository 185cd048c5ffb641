"""Settings: built-in defaults < TOML file < ``PIGEON_*`` environment < flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pigeon.errors import PreconditionFailed

LOG_LEVELS = ("debug", "info", "warning", "error")
PASSWORD_HASHINGS = ("pigeon", "rabbitmq")
CERT_LOGIN_SOURCES = ("common_name", "distinguished_name")


class ConfigError(PreconditionFailed):
    """A setting has a value Pigeon cannot use."""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 5672
    data_dir: Path | None = Path("pigeon-data")
    log_level: str = "info"
    log_json: bool = False
    management_port: int | None = 15672
    # MQTT 3.1.1/5.0 (None: no MQTT listener); MQTT topics are routing keys on mqtt_exchange.
    mqtt_port: int | None = 1883
    # MQTT over WebSocket (path /ws, subprotocol mqtt), on RabbitMQ's Web MQTT port.
    mqtt_ws_port: int | None = 15675
    # MQTT over TLS and over secure WebSocket: listening when tls_certfile and tls_keyfile
    # are set (RabbitMQ's ports). None: not at all. No MQTT listens without mqtt_port.
    mqtt_tls_port: int | None = 8883
    mqtt_wss_port: int | None = 15676
    # A TLS client's verified certificate names its user when CONNECT has no username
    # (RabbitMQ's mqtt.ssl_cert_login); ssl_cert_login_from picks the name (EXTERNAL too).
    mqtt_ssl_cert_login: bool = False
    ssl_cert_login_from: str = "common_name"
    mqtt_exchange: str = "amq.topic"
    # A username without "vhost:" logs in here (None: the default vhost).
    mqtt_vhost: str | None = None
    # Clients without a username, as the default user: "loopback", "always" or "never".
    mqtt_anonymous: str = "loopback"
    mqtt_inflight: int = 256
    mqtt_max_session_expiry: int = 86_400
    # MQTT limits (docs/mqtt.md, "Limits"). Packet size after CONNECT, fixed header
    # included (None: max_message_size + 64 KiB; RabbitMQ's max_packet_size_authenticated),
    # and until then (RabbitMQ's max_packet_size_unauthenticated).
    mqtt_max_packet_size: int | None = None
    mqtt_max_packet_size_unauthenticated: int = 65_536
    mqtt_max_client_id_length: int = 1024  # bytes of UTF-8
    mqtt_max_topic_length: int = 65_535  # bytes of UTF-8, names and filters
    mqtt_max_topic_levels: int = 128
    mqtt_connect_timeout: float = 10.0  # seconds from the TCP accept to the CONNECT
    # Seconds of keep-alive a client may ask at most (0: any); see docs/mqtt.md.
    mqtt_max_keepalive: int = 0
    # Messages one MQTT session's queue holds at most (0: any), and "drop-head" or
    # "reject-publish" when it is full; see docs/mqtt.md.
    mqtt_max_queued: int = 0
    # MQTT 5.0 flow control: QoS 1/2 publishes a client may have unanswered (our Receive
    # Maximum), and topic aliases in each direction (RabbitMQ's mqtt.topic_alias_maximum).
    mqtt_receive_maximum: int = 65_535
    mqtt_topic_alias_maximum: int = 64
    mqtt_queue_overflow: str = "drop-head"
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047
    max_message_size: int = 16 * 1024 * 1024
    # False only for throwaway brokers: confirms no longer mean "on disk".
    fsync: bool = True
    # Stored bodies: zstd above this many bytes (None: never), AES-GCM with a key file.
    compress_threshold: int | None = None
    encryption_key_file: Path | None = None
    # Resource alarms: a fraction of RAM (<= 1.0) or bytes; free bytes in the data folder.
    memory_high_watermark: float = 0.4
    disk_free_limit: int = 50_000_000
    # Paging (a broker with a data folder): queues page their backlogs out to disk, and
    # publishers are slowed to the pace of those writes, above this much memory: a
    # fraction (<= 1.0) of the memory alarm's limit (at most 256 MiB), or bytes. It bounds both the
    # broker's resident memory (checked once a second) and the bodies of ready messages
    # that queues keep in memory (checked as they arrive).
    paging_memory: float = 0.5
    # TLS (amqps): a listener on tls_port when a certificate and key are given.
    tls_port: int | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_cafile: Path | None = None
    tls_verify_peer: bool = False
    tls_fail_if_no_peer_cert: bool = False
    # Serve the management listener over HTTPS with the same certificate and key.
    management_tls: bool = False
    audit_log: Path | None = None
    max_connections: int | None = None
    # Password logins (docs/security.md, "Failed logins"): checks per source address
    # (budget, earned back per second; successes give theirs back), checks waiting or
    # running over all addresses, and how late a throttled address's refusal is answered.
    login_checks_per_source: int = 10
    login_check_rate: float = 1.0
    login_checks_pending: int = 64
    login_refusal_delay: float = 2.0
    # OAuth 2.0 / JWT access tokens as passwords: a [tokens] table (keys = {kid = PEM},
    # jwks_file, audience, resource_server_id, ...); empty: no token logins.
    tokens: dict[str, Any] = field(default_factory=dict)
    # Connection limits per vhost and per user (TOML tables: {"/" = 100}).
    vhost_max_connections: dict[str, int] = field(default_factory=dict)
    user_max_connections: dict[str, int] = field(default_factory=dict)
    # "rabbitmq": passwords set in Pigeon also keep RabbitMQ's salted SHA-256 beside the
    # scrypt hash, so exported definitions let every user log in to RabbitMQ.
    definitions_password_hashing: str = "pigeon"
    default_user: str = "guest"
    default_password: str = "guest"
    default_vhost: str = "/"
    # Cluster mode (docs/cluster.md): NATS URLs ("nats://HOST:PORT,nats://..."), and
    # optionally the servers' monitoring URLs ("http://HOST:PORT,...") to read their
    # durability mode from. None: a single node.
    cluster: str | None = None
    cluster_monitor: str | None = None
    # This node's name (/api/nodes, metrics). None: "pigeon@localhost" for a single
    # node; in a cluster "pigeon-PORT@HOSTNAME", unique per front-end of a machine.
    node_name: str | None = None
    # Cluster mode: a node whose heartbeat is older than this many seconds is shown
    # "running": false by the others (it beats five times per period).
    cluster_node_timeout: float = 5.0
    # Cluster mode: seconds after which the messages a dead node held (delivered, not
    # acked) are delivered again by JetStream (docs/cluster.md, "Queues").
    cluster_ack_wait: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        if self.definitions_password_hashing not in PASSWORD_HASHINGS:
            raise ConfigError(
                'definitions_password_hashing must be "pigeon" or '
                f'"rabbitmq", not {self.definitions_password_hashing!r}'
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, not {self.port}")
        if self.mqtt_anonymous not in ("loopback", "always", "never"):
            raise ConfigError(
                'mqtt_anonymous must be "loopback", "always" or "never", '
                f"not {self.mqtt_anonymous!r}"
            )
        if self.ssl_cert_login_from not in CERT_LOGIN_SOURCES:
            raise ConfigError(
                'ssl_cert_login_from must be "common_name" or "distinguished_name", '
                f"not {self.ssl_cert_login_from!r}"
            )
        if not 0 <= self.mqtt_max_keepalive <= 65535:
            raise ConfigError(f"mqtt_max_keepalive must be 0..65535, not {self.mqtt_max_keepalive}")
        if self.mqtt_queue_overflow not in ("drop-head", "reject-publish"):
            raise ConfigError(
                'mqtt_queue_overflow must be "drop-head" or "reject-publish", '
                f"not {self.mqtt_queue_overflow!r}"
            )
        if not 1 <= self.mqtt_receive_maximum <= 65535:
            raise ConfigError(
                f"mqtt_receive_maximum must be 1..65535, not {self.mqtt_receive_maximum}"
            )
        if not 0 <= self.mqtt_topic_alias_maximum <= 65535:
            raise ConfigError(
                f"mqtt_topic_alias_maximum must be 0..65535, not {self.mqtt_topic_alias_maximum}"
            )
        for name in (
            "mqtt_max_packet_size_unauthenticated",
            "mqtt_max_client_id_length",
            "mqtt_max_topic_length",
            "mqtt_max_topic_levels",
            "mqtt_inflight",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be 1 or more, not {getattr(self, name)}")
        if self.mqtt_max_packet_size is not None and self.mqtt_max_packet_size < 2:
            raise ConfigError(
                f"mqtt_max_packet_size must be 2 bytes or more, not {self.mqtt_max_packet_size}"
            )
        if self.mqtt_connect_timeout <= 0:
            raise ConfigError(
                f"mqtt_connect_timeout must be above 0, not {self.mqtt_connect_timeout}"
            )
        if self.mqtt_max_queued < 0:
            raise ConfigError(f"mqtt_max_queued must be 0 or more, not {self.mqtt_max_queued}")
        if self.cluster_node_timeout <= 0:
            raise ConfigError(
                f"cluster_node_timeout must be above 0, not {self.cluster_node_timeout}"
            )
        if self.cluster_ack_wait < 1:
            raise ConfigError(f"cluster_ack_wait must be at least 1, not {self.cluster_ack_wait}")
        if self.paging_memory <= 0:
            raise ConfigError(f"paging_memory must be above 0, not {self.paging_memory}")
        if self.frame_max < 4096:
            raise ConfigError(f"frame_max must be at least 4096, not {self.frame_max}")
        if self.login_checks_per_source < 1 or self.login_checks_pending < 1:
            raise ConfigError("login_checks_per_source and login_checks_pending must be at least 1")
        if self.login_check_rate <= 0 or self.login_refusal_delay < 0:
            raise ConfigError(
                "login_check_rate must be positive and login_refusal_delay not negative"
            )

    @property
    def has_tls(self) -> bool:
        """A certificate and key are configured: the TLS listeners that default on listen."""
        return self.tls_certfile is not None and self.tls_keyfile is not None

    def with_values(self, values: Mapping[str, Any]) -> Config:
        """A copy with settings given by name, converting strings to each field's type."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, value in values.items():
            key = name.replace("-", "_")
            if key not in known or key == "extra":
                raise ConfigError(f"unknown setting {name!r}")
            changes[key] = _convert(key, getattr(self, key), value)
        return replace(self, **changes)


def _convert(name: str, current: Any, value: Any) -> Any:
    if not isinstance(value, str):
        if (
            name
            in (
                "data_dir",
                "tls_certfile",
                "tls_keyfile",
                "tls_cafile",
                "audit_log",
                "encryption_key_file",
            )
            and value is not None
        ):
            return Path(value)
        return value
    if name == "data_dir":
        return None if value in ("", ":memory:") else Path(value)
    if name in ("cluster", "cluster_monitor", "node_name"):
        return value.strip() or None
    if name in (
        "management_port",
        "tls_port",
        "mqtt_port",
        "mqtt_ws_port",
        "mqtt_tls_port",
        "mqtt_wss_port",
        "mqtt_max_packet_size",
        "max_connections",
        "compress_threshold",
    ):
        return None if value.lower() in ("", "none", "off") else int(value)
    if name in ("tls_certfile", "tls_keyfile", "tls_cafile", "audit_log", "encryption_key_file"):
        return Path(value) if value else None
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if isinstance(current, float):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if isinstance(current, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {value!r}") from None
    return value


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    prefix = "PIGEON_"
    names = {f.name for f in fields(Config)} - {"extra"}
    found = {}
    for key, value in environ.items():
        if key.startswith(prefix) and (name := key[len(prefix) :].lower()) in names:
            found[name] = value
    return found


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from every source, in order of precedence."""
    config = Config()
    if path is not None:
        with path.open("rb") as file:
            try:
                data = tomllib.load(file)
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"{path}: {error}") from None
        config = config.with_values(data.get("pigeon", data))
    config = config.with_values(from_environment(os.environ if environ is None else environ))
    return config.with_values({k: v for k, v in (overrides or {}).items() if v is not None})
