"""AMQP 0-9-1 as the transport glue sees it: :class:`AMQPHandler` as a Session.

:mod:`pigeon.transport.glue` drives any protocol through the small interface
of :class:`pigeon.transport.session.Session`; this module is AMQP's side of it:
its states as the glue's phases, heartbeats as its keepalive, and the flow
control a publisher gets when the store falls behind.
"""

from __future__ import annotations

from collections.abc import Callable

from pigeon.core.ports import Scheduler
from pigeon.operations.services import Services
from pigeon.protocols.amqp091.adapter import AMQPHandler, AMQPSettings
from pigeon.protocols.amqp091.connection import ConnState
from pigeon.protocols.amqp091.replies import ReplyCode
from pigeon.transport.session import Keepalive, Peer, Phase, SessionFactory, Waiter

# Flow control: a connection that publishes while this many writes wait for the disk
# is not read again until the store's next commit (RabbitMQ's credit flow, in effect).
# Without it a fast publisher piles bodies up in memory faster than the disk takes them.
# Likewise while queues are over their memory budget (``paging_memory``) and the pager
# has writes outstanding: a publisher is read again once the pager's next write is done,
# so a backlog grows no faster than it goes to disk, long before a memory alarm.
STORE_BACKLOG = 20_000

_PHASES = {
    ConnState.AWAITING_HEADER: Phase.HANDSHAKE,
    ConnState.AWAITING_START_OK: Phase.HANDSHAKE,
    ConnState.SECURING: Phase.HANDSHAKE,
    ConnState.AWAITING_TUNE_OK: Phase.HANDSHAKE,
    ConnState.AWAITING_OPEN: Phase.HANDSHAKE,
    ConnState.OPEN: Phase.OPEN,
    ConnState.CLOSING: Phase.CLOSING,
}


class AMQPSession(AMQPHandler):
    """One AMQP client connection, driven by the transport glue."""

    @property
    def phase(self) -> Phase:
        conn = self.conn
        state = conn.state
        if state is ConnState.OPEN:  # the usual answer, without a lookup
            return Phase.OPEN
        if state is ConnState.CLOSED:
            # Closed by the client and answered with close-ok: linger (glue.py).
            return Phase.LINGER if conn.closed_by_peer else Phase.CLOSED
        return _PHASES[state]

    def receive_data(self, data: bytes) -> None:
        self.conn.receive_data(data)

    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()

    def throttle(self) -> Waiter | None:
        """What a publisher waits for before it is read again (credit flow), if anything:
        the store's next commit, or the pager's next write."""
        if not self.published:
            return None
        store = self.context.node.store
        if store is None:
            return None
        if store.queued_writes > STORE_BACKLOG:
            return store.sync
        pager = store.pager
        if pager is not None and pager.backlog and pager.memory.over:
            pager.memory.flow_pauses += 1
            return pager.when_written
        return None

    def keepalive(self) -> Keepalive | None:
        """The negotiated heartbeat: a frame when idle for half of it, the client dropped
        after two intervals without a frame (amqp0-9-1 §4.2.7)."""
        interval = self.conn.heartbeat
        if not interval:
            return None
        return Keepalive(tick=interval / 2, timeout=2 * interval)

    def send_heartbeat(self) -> None:
        self.conn.send_heartbeat()

    def internal_error(self) -> None:
        self.conn.close(ReplyCode.INTERNAL_ERROR, "INTERNAL_ERROR")
        self.connection_lost()


def session_factory(
    context: Services, scheduler: Scheduler, settings: AMQPSettings | None = None
) -> SessionFactory[AMQPSession]:
    """Sessions for a listener's accepted connections, all sharing ``context``."""

    def make(peer: Peer, want_flush: Callable[[], None]) -> AMQPSession:
        return AMQPSession(
            context,
            scheduler,
            settings=settings,
            peer=peer.address,
            loopback=peer.loopback,
            want_flush=want_flush,
            certificate=peer.certificate,
            tls=peer.tls,
        )

    return make
