"""What the asyncio glue needs from a protocol: a sans-IO session per connection.

A protocol package (AMQP 0-9-1 today, MQTT next) implements :class:`Session`
for one client connection; :mod:`pigeon.transport.glue` moves its bytes, runs
its turns under a budget, and keeps the timers every protocol has (handshake
timeout, keepalive, closing timeouts). The session never sees a socket, and the
glue never sees a frame: this module is the whole contract between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, TypeVar


class Phase(Enum):
    """Where a session is in its life, as far as the glue cares."""

    HANDSHAKE = "handshake"  # not usable yet: the handshake timeout runs
    OPEN = "open"  # handshake done: keepalive runs
    CLOSING = "closing"  # we asked the peer to close: wait a while for its answer
    CLOSED = "closed"  # nothing more to say: close the socket once the output is out
    # The peer closed and was answered: what it still sends is read and discarded
    # until it closes its side (closing at once would reset the socket under its
    # last writes, and the peer would never read the answer).
    LINGER = "linger"


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The liveness check a session asks for once it is open.

    Every ``tick`` seconds the glue drops the peer if nothing arrived for
    ``timeout`` seconds, and, if ``send`` and nothing went out since the last
    tick, asks the session for a heartbeat (AMQP's heartbeat frames; MQTT's
    server only listens for the client's PINGREQ, so it would not send).
    """

    tick: float
    timeout: float
    send: bool = True
    # Called instead of dropping the peer at once: the session says why (MQTT 5.0's
    # DISCONNECT 0x8D) and closes; its output is written before the socket closes.
    expired: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class WebSocketRequest:
    """The HTTP request a WebSocket connection was opened with (:mod:`.websocket`)."""

    target: str  # the request target, query included ("/ws?x=1")
    origin: str | None  # the browser's Origin header, unchecked: the session may judge it
    subprotocol: str | None  # the one agreed on ("mqtt"), if any was asked for
    headers: tuple[tuple[str, str], ...] = ()  # lower-case names, repeats joined by ", "


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end, as the listener saw it at accept."""

    address: str  # "host:port", or the socket path
    loopback: bool
    tls: bool = False
    certificate: dict[str, Any] | None = None  # the peer's verified certificate, if any
    websocket: WebSocketRequest | None = None  # set when the protocol runs over a WebSocket
    local: str = ""  # "host:port" the client connected to (the listener's address)


# Something to wait for before the session is read again: called with the
# callback to run once it has happened (a store's next commit, say).
Waiter = Callable[[Callable[[], object]], None]


class Session(Protocol):
    """One client connection's protocol logic, without I/O.

    The glue calls, per turn: :meth:`receive_data` with what the socket gave,
    then :meth:`process` with the turn's budget of events, then
    :meth:`throttle`; it writes :meth:`data_to_send` once per loop iteration,
    after the session asked for it through the ``want_flush`` callback it was
    created with. The session asks whenever it has output, and whenever its
    :attr:`phase` is not OPEN after a turn (the glue acts on a phase at the flush).
    """

    @property
    def phase(self) -> Phase: ...

    @property
    def blocked(self) -> bool:
        """Not to be read until the session says so (a resource alarm): the glue
        neither continues its turns nor counts its silence against the keepalive."""
        ...

    def receive_data(self, data: bytes) -> None: ...

    def process(self, budget: int) -> bool:
        """Handle at most ``budget`` events; True if more are waiting already."""
        ...

    def throttle(self) -> Waiter | None:
        """After a turn: what to wait for before reading more (flow control), if anything."""
        ...

    def data_to_send(self) -> bytes: ...

    def output_flushed(self) -> None:
        """What was queued went to the transport (consumers may be given more)."""
        ...

    def pause_output(self) -> None:
        """The transport's write buffer is full: stop producing output."""
        ...

    def resume_output(self) -> None: ...

    def keepalive(self) -> Keepalive | None:
        """Asked once the session is open; None: no liveness check."""
        ...

    def send_heartbeat(self) -> None: ...

    def internal_error(self) -> None:
        """A bug escaped :meth:`process`: tell the peer (if the protocol can) and end."""
        ...

    def shutdown(self) -> None:
        """The broker closes the connection (graceful shutdown): say so to the peer."""
        ...

    def connection_lost(self) -> None:
        """The connection is over, however it ended: let go of everything. Idempotent."""
        ...


S_co = TypeVar("S_co", bound=Session, covariant=True)


class SessionFactory(Protocol[S_co]):
    """Makes the session of a newly accepted connection; ``want_flush`` asks the
    glue to write the session's output at the end of this loop iteration."""

    def __call__(self, peer: Peer, want_flush: Callable[[], None]) -> S_co: ...
