"""The composition root: configuration, core, listeners, and their lifetime.

``pigeon serve`` and embedded use run the same code::

    async with Broker(Config(port=0, mqtt_port=0, mqtt_ws_port=0)) as broker:
        ...  # broker.amqp_url is ready

    # for code that is not async:
    with Broker.in_thread(Config(port=0, mqtt_port=0, mqtt_ws_port=0)) as broker:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pigeon import accounts
from pigeon.auth.audit import AuditLog
from pigeon.auth.authenticator import Authenticator, exposure_warning
from pigeon.auth.gate import GateSettings, LoginGate
from pigeon.auth.refusals import RefusalLog
from pigeon.auth.tokens import TokenVerifier, settings_from_mapping
from pigeon.auth.users import UserStore
from pigeon.config import Config, ConfigError
from pigeon.core.node import Node
from pigeon.core.ports import MessageIndex, Store
from pigeon.embedded import EmbeddedAPI
from pigeon.errors import MissingPackage
from pigeon.operations.limits import ConnectionLimits
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.protocols.amqp091.adapter import AMQPSettings
from pigeon.protocols.amqp091.server import AMQPListener, start_listener
from pigeon.protocols.amqp091.session import AMQPSession
from pigeon.protocols.mqtt.server import MQTTConnection, MQTTListeners
from pigeon.protocols.mqtt.sessions import KIND as MQTT_SESSIONS
from pigeon.protocols.mqtt.settings import MQTTContext, MQTTSettings
from pigeon.protocols.mqtt.topics import TopicLimits
from pigeon.resources import ResourceMonitor
from pigeon.storage.memory import MemoryStore
from pigeon.transport.glue import Connection
from pigeon.transport.tls import TLSSettings, server_context
from pigeon.version import __version__

if TYPE_CHECKING:
    from pigeon.admin import ManagementServer
    from pigeon.cluster.member import ClusterMember

log = logging.getLogger("pigeon.broker")

# Threads for password checks (scrypt releases the GIL): the gate never gives the pool
# more than this many at once, so nothing queues inside the pool itself.
AUTH_THREADS = 2


def read_key(path: Path) -> bytes:
    """An AES key file: 16, 24 or 32 raw bytes, or the same as hex text."""
    data = path.read_bytes()
    text = data.strip()
    if len(text) in (32, 48, 64):
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) not in (16, 24, 32):
        raise ConfigError(f"{path}: an encryption key is 16, 24 or 32 bytes (or that as hex)")
    return data


# Setting -> how ``pigeon serve`` sets it, for "port in use" messages.
_PORT_SETTINGS = {
    "port": "--port",
    "tls_port": "tls_port",
    "management_port": "--management-port",
    "mqtt_port": "--mqtt-port",
    "mqtt_ws_port": "--mqtt-ws-port",
    "mqtt_tls_port": "--mqtt-tls-port",
    "mqtt_wss_port": "--mqtt-wss-port",
}
# The MQTT listeners' settings, by scheme.
_MQTT_PORTS = {
    "mqtt": "mqtt_port",
    "mqtts": "mqtt_tls_port",
    "ws": "mqtt_ws_port",
    "wss": "mqtt_wss_port",
}


def listens(config: Config, setting: str) -> bool:
    """Whether the listener of a port setting is to run: set (not None), and for those
    that need it, MQTT on and a certificate configured."""
    if getattr(config, setting) is None:
        return False
    if setting.startswith("mqtt_") and setting != "mqtt_port" and config.mqtt_port is None:
        return False  # --no-mqtt: no MQTT listener of any kind
    if setting in ("mqtt_tls_port", "mqtt_wss_port"):
        return config.has_tls
    return True


def check_ports_free(config: Config) -> None:
    """Every fixed port this broker is to listen on, tried before anything listens: a
    busy port is reported with the setting to change, and never after AMQP has opened."""
    for setting, flag in _PORT_SETTINGS.items():
        port = getattr(config, setting)
        if not port or not listens(config, setting):  # no listener, or 0 (any free port)
            continue
        try:
            found = socket.getaddrinfo(
                config.host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            for family, kind, proto, _, address in found:
                with socket.socket(family, kind, proto) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
        except OSError as error:
            where = "" if flag == setting else f" ({flag})"
            raise ConfigError(
                f"cannot listen on {config.host}:{port}: {error.strerror or error}; set "
                f"{setting}{where} or PIGEON_{setting.upper()} to a free port, or 0 for "
                "any"
            ) from None


def _users(config: Config) -> UserStore:
    users = UserStore(rabbit_compatible=config.definitions_password_hashing == "rabbitmq")
    users.add_user(
        config.default_user,
        config.default_password,
        frozenset({"administrator"}),
        loopback_only=config.default_user == "guest",
        reuse_hash=True,
    )
    users.set_permission(config.default_vhost, config.default_user)
    return users


class Broker(EmbeddedAPI):
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config(
            port=0, data_dir=None, management_port=None, mqtt_port=0, mqtt_ws_port=0
        )
        self.node: Node | None = None
        self.store: Store | None = None
        self.context: Services | None = None
        self._amqp_settings = AMQPSettings()
        self._listener: AMQPListener | None = None
        self._tls_listener: AMQPListener | None = None
        self._mqtt = MQTTListeners()
        self.mqtt: MQTTContext | None = None
        self._mqtt_sessions: dict[str, Any] = {}  # MQTT sessions an earlier run kept
        self.audit: AuditLog | None = None
        self._accounts: accounts.AccountSaver | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._refusals: RefusalLog | None = None
        self.management: ManagementServer | None = None
        self.resources: ResourceMonitor | None = None
        self._stopped: asyncio.Event | None = None
        self.cluster: ClusterMember | None = None

    @property
    def amqp_port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the broker is not running")
        return self._listener.port

    @property
    def connections(self) -> list[Connection[AMQPSession] | MQTTConnection]:
        """Every live client connection: AMQP (and amqps), MQTT over TCP, TLS, WebSocket."""
        found: list[Connection[AMQPSession] | MQTTConnection] = []
        for listener in (self._listener, self._tls_listener):
            if listener is not None:
                found.extend(listener.connections)
        found.extend(self._mqtt.connections)
        return found

    @property
    def mqtt_port(self) -> int | None:
        """The MQTT listener's port (None: no MQTT listener)."""
        return self._mqtt.port("mqtt")

    @property
    def mqtts_port(self) -> int | None:
        """MQTT over TLS's port (None: not listening)."""
        return self._mqtt.port("mqtts")

    @property
    def mqtt_url(self) -> str:
        """``mqtt://host:port`` of the MQTT listener."""
        url = self._mqtt.url("mqtt", self._host())
        if url is None:
            raise RuntimeError("the broker has no MQTT listener")
        return url

    @property
    def mqtts_url(self) -> str | None:
        """``mqtts://host:port`` of MQTT over TLS (None: not listening)."""
        return self._mqtt.url("mqtts", self._host())

    @property
    def mqtt_ws_url(self) -> str | None:
        """``ws://host:port/ws`` of MQTT over WebSocket (None: not listening)."""
        return self._mqtt.url("ws", self._host())

    @property
    def mqtt_wss_url(self) -> str | None:
        """``wss://host:port/ws`` of MQTT over secure WebSocket (None: not listening)."""
        return self._mqtt.url("wss", self._host())

    @property
    def management_url(self) -> str | None:
        if self.management is None:
            return None
        scheme = "https" if self.config.management_tls else "http"
        return f"{scheme}://{self._host()}:{self.management.port}/"

    def _host(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    @property
    def amqp_url(self) -> str:
        config = self.config
        host = self._host()
        user = quote(config.default_user, safe="")
        password = quote(config.default_password, safe="")
        vhost = quote(config.default_vhost, safe="")
        return f"amqp://{user}:{password}@{host}:{self.amqp_port}/{vhost}"

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        check_ports_free(config)
        await self._join_cluster()
        self.store = self._open_store(loop)
        if self.cluster is not None:
            self.store = self.cluster.wrap(self.store)
        # Definitions first: the queues are declared, then their stored messages are read
        # back off the loop (their numbers; the bodies as the queues need them). Clients
        # are let in once they are back, as RabbitMQ recovers queues before it listens.
        snapshot = self.store.load(messages=False, index=False)
        self._mqtt_sessions = snapshot.documents.get(MQTT_SESSIONS, {})
        self.node = Node(loop, self._node_name(), store=self.store, vocabulary=RABBITMQ)
        if self.cluster is not None:
            self.cluster.prepare(self.node)  # durable queues in JetStream
        restored = self.node.restore(snapshot)
        index: asyncio.Future[MessageIndex] = loop.create_future()
        self.store.fetch_index(index.set_result)
        restored += self.node.restore_index(await index)
        if restored:
            log.info("recovered %d persistent messages from %s", restored, config.data_dir)
        if config.default_vhost not in self.node.vhosts:
            self.node.add_vhost(config.default_vhost)
        users = accounts.restore(
            snapshot, rabbit_compatible=(config.definitions_password_hashing == "rabbitmq")
        ) or _users(config)
        self._accounts = accounts.AccountSaver(users, self.store)
        if self.cluster is not None:  # the cluster's definitions, before users are saved
            await self.cluster.attach(self.node, users)
        self._accounts.start()
        self.audit = AuditLog(path=config.audit_log) if config.audit_log else None
        tokens = TokenVerifier(settings_from_mapping(config.tokens)) if config.tokens else None
        self._refusals = RefusalLog(self.audit, loop)
        authenticator = Authenticator(
            users,
            audit=self.audit,
            tokens=tokens,
            refusals=self._refusals,
            cert_login_from=config.ssl_cert_login_from,
        )
        self._amqp_settings = AMQPSettings(
            channel_max=config.channel_max,
            frame_max=config.frame_max,
            heartbeat=config.heartbeat,
            max_message_size=config.max_message_size,
        )
        self.context = Services(
            node=self.node,
            users=users,
            default_vhost=config.default_vhost,
            audit=self.audit,
            auth=authenticator,
            logins=LoginGate(
                authenticator,
                loop,
                self._offload,
                GateSettings(
                    checks_per_source=config.login_checks_per_source,
                    check_rate=config.login_check_rate,
                    pending=config.login_checks_pending,
                    refusal_delay=config.login_refusal_delay,
                    threads=AUTH_THREADS,
                ),
            ),
            limits=ConnectionLimits(
                max_connections=config.max_connections,
                per_vhost=dict(config.vhost_max_connections),
                per_user=dict(config.user_max_connections),
                lookup=self._runtime_limit,
                counts=self.node.stats,
            ),
        )
        self._listener = await start_listener(
            self.context, config.host, config.port, settings=self._amqp_settings
        )
        self.node.vhost_deleted.append(self._listener.close_vhost)
        if config.tls_port is not None:
            self._tls_listener = await self._start_tls(config)
            self.node.vhost_deleted.append(self._tls_listener.close_vhost)
        if listens(config, "mqtt_port"):
            await self._start_mqtt(config, loop)
        if (warning := exposure_warning(config.host, users)) is not None:
            log.warning("%s", warning)
        self.resources = ResourceMonitor(
            self.context.alarms,
            loop,
            memory_watermark=config.memory_high_watermark,
            disk_free_limit=config.disk_free_limit,
            data_dir=config.data_dir,
            store_failing=lambda: bool(getattr(self.store, "failing", False)),
            paging=self.store.pager.memory if self.store.pager is not None else None,
            paging_memory=config.paging_memory,
            reduce_memory=self._reduce_memory,
        )
        self.resources.start()
        log.info(
            "Pigeon %s: AMQP 0-9-1 listening on %s:%d", __version__, config.host, self.amqp_port
        )
        if config.management_port is not None:
            # Imported here: aiohttp and the UI cost about a second of start-up that a
            # broker without management (embedded, tests) should not pay.
            from pigeon.admin import start_management

            self.management = await start_management(
                self,
                config.host,
                config.management_port,
                ssl=self._tls_context(config) if config.management_tls else None,
            )
            log.info("management listening on %s:%d", config.host, self.management.port)

    async def _join_cluster(self) -> None:
        """Cluster mode (docs/cluster.md): connect and check before anything else."""
        if self.config.cluster is None:
            return
        # Imported here: nats-py is the cluster extra's, and a single node needs none of it.
        try:
            from pigeon.cluster.member import ClusterMember
        except ImportError:
            raise MissingPackage("cluster", "nats-py", "cluster") from None

        self.cluster = ClusterMember(self.config)
        await self.cluster.start()

    def _node_name(self) -> str:
        if self.cluster is not None:
            return self.cluster.node_name
        return self.config.node_name or "pigeon@localhost"

    def cluster_overview(self) -> dict[str, Any] | None:
        return self.cluster.overview() if self.cluster is not None else None

    def _runtime_limit(self, kind: str, name: str, limit: str) -> int | None:
        """A vhost or user limit set through the management API or definitions."""
        if kind == "vhost":
            vhost = self.node.vhosts.get(name) if self.node is not None else None
            return vhost.policies.limits.get(limit) if vhost is not None else None
        user = self.context.users.users.get(name) if self.context is not None else None
        return user.limits.get(limit) if user is not None else None

    async def stop(self) -> None:
        if self.resources is not None:
            self.resources.stop()
        if self.management is not None:
            management, self.management = self.management, None
            await management.close()
        if self._tls_listener is not None:
            tls_listener, self._tls_listener = self._tls_listener, None
            await tls_listener.close()
        await self._mqtt.close()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._accounts is not None:
            self._accounts.stop()
            self._accounts = None
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            await cluster.stop()
        if self.node is not None:
            self.node.close()
        if self.store is not None:
            store, self.store = self.store, None
            # Blocks while the writer finishes its last batch: shutdown has nothing else to do.
            store.close()
            log.info("Pigeon stopped")
        if self._refusals is not None:
            self._refusals.flush()  # the summaries of refused logins not written yet
            self._refusals = None
        if self.audit is not None:
            self.audit.close()
            self.audit = None
        if self._stopped is not None:
            self._stopped.set()

    @staticmethod
    def _tls_context(config: Config) -> ssl.SSLContext:
        if config.tls_certfile is None or config.tls_keyfile is None:
            raise ConfigError("TLS needs tls_certfile and tls_keyfile")
        return server_context(
            TLSSettings(
                certfile=config.tls_certfile,
                keyfile=config.tls_keyfile,
                cafile=config.tls_cafile,
                verify_peer=config.tls_verify_peer,
                fail_if_no_peer_cert=config.tls_fail_if_no_peer_cert,
            )
        )

    async def _start_tls(self, config: Config) -> AMQPListener:
        context = self._tls_context(config)
        assert self.context is not None
        listener = await start_listener(
            self.context,
            config.host,
            config.tls_port or 0,
            settings=self._amqp_settings,
            ssl=context,
        )
        log.info("AMQP 0-9-1 over TLS listening on %s:%d", config.host, listener.port)
        return listener

    async def _start_mqtt(self, config: Config, loop: asyncio.AbstractEventLoop) -> None:
        assert self.context is not None and self.node is not None
        self.mqtt = MQTTContext(
            self.context,
            loop,
            MQTTSettings(
                exchange=config.mqtt_exchange,
                vhost=config.mqtt_vhost or config.default_vhost,
                anonymous=config.mqtt_anonymous,
                anonymous_user=config.default_user,
                inflight=config.mqtt_inflight,
                max_session_expiry=config.mqtt_max_session_expiry,
                maximum_packet_size=(
                    config.mqtt_max_packet_size or config.max_message_size + 65_536
                ),
                connect_maximum_packet_size=config.mqtt_max_packet_size_unauthenticated,
                max_client_id_length=config.mqtt_max_client_id_length,
                topic_limits=TopicLimits(
                    config.mqtt_max_topic_length, config.mqtt_max_topic_levels
                ),
                connect_timeout=config.mqtt_connect_timeout,
                max_keepalive=config.mqtt_max_keepalive,
                max_queued=config.mqtt_max_queued,
                queue_overflow=config.mqtt_queue_overflow,
                receive_maximum=config.mqtt_receive_maximum,
                topic_alias_maximum=config.mqtt_topic_alias_maximum,
                cert_login=config.mqtt_ssl_cert_login,
            ),
        )
        kept = self.mqtt.registry.restore(self._mqtt_sessions, loop)
        if kept:
            log.info("recovered the packet ids of %d MQTT sessions", kept)
        ports = {
            scheme: getattr(config, setting) or 0
            for scheme, setting in _MQTT_PORTS.items()
            if listens(config, setting)
        }
        await self._mqtt.start(
            self.mqtt,
            config.host,
            ports,
            ssl=self._tls_context(config) if config.has_tls else None,
            on_vhost_deleted=self.node.vhost_deleted.append,
        )

    @property
    def amqps_port(self) -> int | None:
        return self._tls_listener.port if self._tls_listener is not None else None

    def _reduce_memory(self) -> None:
        """Every queue pages out all but the head of its backlog (resources.py)."""
        if self.node is not None:
            for vhost in self.node.vhosts.values():
                for queue in vhost.queues.values():
                    queue.reduce_memory()

    def _offload(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run blocking work (password hashing) on the broker's small pool; ``done`` gets
        its result or exception back on the event loop."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=AUTH_THREADS, thread_name_prefix="pigeon-auth"
            )

        def finished(future: Future[Any]) -> None:
            try:
                outcome = future.result()
            except BaseException as error:  # handed to the loop, which decides
                outcome = error
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(done, outcome)

        self._pool.submit(work).add_done_callback(finished)

    def _open_store(self, loop: asyncio.AbstractEventLoop) -> Store:
        """SQLite in the data folder, or nothing on disk when there is no folder."""
        config = self.config
        if config.data_dir is None:
            return MemoryStore()
        if config.data_dir.exists() and not config.data_dir.is_dir():
            raise ConfigError(
                f"data_dir {config.data_dir} is a file, not a folder; set "
                "data_dir (--data-dir, PIGEON_DATA_DIR) to a folder"
            )
        from pigeon.storage.sqlite import SQLiteStore

        key = None if config.encryption_key_file is None else read_key(config.encryption_key_file)
        return SQLiteStore(
            config.data_dir,
            loop=loop,
            fsync=config.fsync,
            compress_threshold=config.compress_threshold,
            encryption_key=key,
        )

    async def wait_stopped(self) -> None:
        assert self._stopped is not None, "start the broker first"
        await self._stopped.wait()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def in_thread(cls, config: Config | None = None) -> Iterator[Broker]:
        """Run a broker on its own thread and event loop, for code that is not async."""
        broker = cls(config)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(broker.start())
            except BaseException as error:  # reported to the caller below
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_until_complete(broker.wait_stopped())

        thread = threading.Thread(target=run, name="pigeon-broker", daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            loop.close()
            raise failure[0]
        try:
            yield broker
        finally:
            asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(timeout=10)
            thread.join(timeout=10)
            _cancel_remaining(loop)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
