"""The transport glue with a fake transport, a manual clock and a toy protocol.

No sockets and no event loop (the uvicorn way, tests/protocols/test_http.py):
each test feeds bytes to :class:`pigeon.transport.glue.Connection`, runs the
loop's iterations or moves the clock by hand, and looks at what reached the
transport: the writes, the reading pauses, the close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from glue_fakes import FakeTransport, ManualClock, connect, hub

from pigeon.operations.limits import ConnectionLimits
from pigeon.transport.glue import Connection, Hub
from pigeon.transport.listener import Listener
from pigeon.transport.session import Keepalive, Peer, Phase, Waiter


class LineSession:
    """A line protocol, sans-IO: each line is an event and each answer a line.

    ``hello`` completes the handshake; any other line is echoed back; ``bye`` from
    the peer is answered and the connection lingers; ``leave`` makes us close
    (the peer answers ``ok``); ``boom`` is a bug.
    """

    def __init__(self, peer: Peer, want_flush: Callable[[], None]) -> None:
        self.peer = peer
        self.want_flush = want_flush
        self.phase = Phase.HANDSHAKE
        self.blocked = False
        self.handled: list[bytes] = []
        self.wait: Waiter | None = None  # what the next turn's throttle() answers
        self.heartbeat: Keepalive | None = None
        self.output_paused = False
        self.flushed = 0
        self.said_goodbye = False
        self.lost = False
        self._input = b""
        self._out: list[bytes] = []

    def receive_data(self, data: bytes) -> None:
        self._input += data

    def process(self, budget: int) -> bool:
        while budget > 0 and b"\n" in self._input and self.phase is not Phase.LINGER:
            line, self._input = self._input.split(b"\n", 1)
            self._handle(line)
            budget -= 1
        if self._out or self.phase is not Phase.OPEN:
            self.want_flush()
        return b"\n" in self._input and self.phase is not Phase.LINGER

    def _handle(self, line: bytes) -> None:
        self.handled.append(line)
        if self.phase is Phase.HANDSHAKE:
            if line == b"hello":
                self.phase = Phase.OPEN
                self._out.append(b"welcome\n")
        elif self.phase is Phase.CLOSING:
            if line == b"ok":
                self.phase = Phase.CLOSED
        elif line == b"bye":
            self.phase = Phase.LINGER
            self._out.append(b"bye\n")
        elif line == b"boom":
            raise RuntimeError("a bug")
        elif line == b"leave":
            self.phase = Phase.CLOSING
            self._out.append(b"please close\n")
        else:
            self._out.append(line + b"\n")

    def throttle(self) -> Waiter | None:
        wait, self.wait = self.wait, None
        return wait

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def output_flushed(self) -> None:
        self.flushed += 1

    def pause_output(self) -> None:
        self.output_paused = True

    def resume_output(self) -> None:
        self.output_paused = False

    def keepalive(self) -> Keepalive | None:
        return self.heartbeat

    def send_heartbeat(self) -> None:
        self._out.append(b"heartbeat\n")

    def internal_error(self) -> None:
        self._out.append(b"internal error\n")
        self.phase = Phase.CLOSED

    def shutdown(self) -> None:
        self._out.append(b"shutting down\n")
        self.said_goodbye = True
        self.phase = Phase.CLOSED

    def connection_lost(self) -> None:
        self.lost = True


def session_of(connection: Connection[LineSession]) -> LineSession:
    assert connection.session is not None
    return connection.session


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def lines(clock: ManualClock) -> Hub[LineSession]:
    return hub(LineSession, clock)


def opened(
    lines: Hub[LineSession], clock: ManualClock, keepalive: Keepalive | None = None
) -> tuple[Connection[LineSession], FakeTransport]:
    connection, transport = connect(lines, clock)
    session_of(connection).heartbeat = keepalive
    connection.data_received(b"hello\n")
    clock.run()
    assert transport.writes == [b"welcome\n"]
    transport.writes.clear()
    return connection, transport


# -- write coalescing ----------------------------------------------------------------


def test_the_answers_of_one_turn_go_out_in_one_write(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, transport = opened(lines, clock)
    session = session_of(connection)
    flushed = session.flushed
    connection.data_received(b"a\nb\nc\n")
    connection.data_received(b"d\n")  # read in the same loop iteration
    assert transport.writes == [], "written before the end of the loop iteration"
    clock.turn()
    assert transport.writes == [b"a\nb\nc\nd\n"]
    assert session.flushed == flushed + 1


def test_a_turn_without_output_writes_nothing(lines: Hub[LineSession], clock: ManualClock) -> None:
    connection, transport = opened(lines, clock)
    connection.data_received(b"unfinished line")
    clock.run()
    assert transport.writes == []
    assert session_of(connection).handled == [b"hello"]


# -- the per-turn budget ---------------------------------------------------------------


def test_a_connection_over_its_budget_waits_for_the_next_loop_iteration(clock: ManualClock) -> None:
    lines = hub(LineSession, clock, budget=2)
    connection, transport = opened(lines, clock)
    other, other_transport = opened(lines, clock)
    session = session_of(connection)
    connection.data_received(b"1\n2\n3\n4\n5\n")
    assert session.handled[1:] == [b"1", b"2"]
    assert not transport.reading, "a connection with work left is read again"
    other.data_received(b"x\n")  # the others have their turn meanwhile
    clock.turn()
    assert other_transport.writes == [b"x\n"]
    assert session.handled[1:] == [b"1", b"2", b"3", b"4"]
    assert not transport.reading
    clock.turn()
    assert session.handled[1:] == [b"1", b"2", b"3", b"4", b"5"]
    assert transport.reading
    clock.run()
    assert transport.output == b"1\n2\n3\n4\n5\n"


def test_a_blocked_session_is_not_continued_until_resumed(clock: ManualClock) -> None:
    lines = hub(LineSession, clock, budget=1)
    connection, transport = opened(lines, clock)
    session = session_of(connection)
    session.blocked = True
    connection.data_received(b"1\n2\n")
    clock.run()
    assert session.handled[1:] == [b"1"]
    assert not transport.reading
    session.blocked = False
    connection.resume()
    assert session.handled[1:] == [b"1", b"2"]
    assert transport.reading


# -- backpressure ----------------------------------------------------------------------


def test_reading_pauses_until_what_the_session_waits_for_happens(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, transport = opened(lines, clock)
    session = session_of(connection)
    waiting: list[Callable[[], object]] = []
    session.wait = waiting.append  # the store's next commit, say
    connection.data_received(b"publish\n")
    clock.run()
    assert not transport.reading
    assert len(waiting) == 1
    waiting.pop()()  # it happened: read again
    assert transport.reading


def test_a_full_write_buffer_pauses_the_sessions_output(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, _ = opened(lines, clock)
    connection.pause_writing()
    assert session_of(connection).output_paused
    connection.resume_writing()
    assert not session_of(connection).output_paused


# -- timers ------------------------------------------------------------------------------


def test_the_handshake_times_out(lines: Hub[LineSession], clock: ManualClock) -> None:
    connection, transport = connect(lines, clock)
    connection.data_received(b"not hello\n")
    clock.advance(9.9)
    assert not transport.closing
    clock.advance(0.2)
    assert transport.aborted
    assert session_of(connection).lost
    assert lines.connections == set()


def test_an_open_session_outlives_the_handshake_timeout(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    _, transport = opened(lines, clock)
    clock.advance(3600)
    assert not transport.closing


def test_heartbeats_go_out_when_the_connection_is_idle(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, transport = opened(lines, clock, Keepalive(tick=5, timeout=20))
    connection.data_received(b"a\n")
    clock.advance(5)  # "a" went out in this tick: no heartbeat needed
    assert transport.writes == [b"a\n"]
    clock.advance(5)
    assert transport.writes == [b"a\n", b"heartbeat\n"]
    connection.data_received(b"still here\n")
    clock.advance(10)
    assert transport.writes[-1] == b"heartbeat\n"
    assert not transport.closing


def test_a_silent_peer_is_dropped(lines: Hub[LineSession], clock: ManualClock) -> None:
    connection, transport = opened(lines, clock, Keepalive(tick=5, timeout=20))
    clock.advance(20)
    assert not transport.closing
    clock.advance(5)
    assert transport.aborted
    assert session_of(connection).lost


def test_a_blocked_peers_silence_is_not_held_against_it(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, transport = opened(lines, clock, Keepalive(tick=5, timeout=20))
    session_of(connection).blocked = True  # it is not read: its silence proves nothing
    clock.advance(60)
    assert not transport.closing


def test_a_keepalive_that_only_listens_sends_nothing(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    _, transport = opened(lines, clock, Keepalive(tick=5, timeout=20, send=False))
    clock.advance(15)
    assert transport.writes == []
    assert not transport.closing


# -- closing -----------------------------------------------------------------------------


def test_a_peer_that_closed_is_read_until_it_closes_its_side(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, transport = opened(lines, clock)
    connection.data_received(b"bye\nlate\n")
    clock.run()
    assert transport.writes == [b"bye\n"]
    connection.data_received(b"later\n")  # discarded unread
    assert session_of(connection).handled == [b"hello", b"bye"]
    assert not transport.closing
    clock.advance(3)
    assert transport.closing and not transport.aborted


def test_our_close_waits_for_the_peers_answer(lines: Hub[LineSession], clock: ManualClock) -> None:
    connection, transport = opened(lines, clock)
    connection.data_received(b"leave\n")
    clock.run()
    assert transport.writes == [b"please close\n"]
    connection.data_received(b"ok\n")
    clock.run()
    assert transport.closing


def test_our_close_gives_up_on_a_peer_that_does_not_answer(
    lines: Hub[LineSession], clock: ManualClock
) -> None:
    connection, transport = opened(lines, clock)
    connection.data_received(b"leave\n")
    clock.advance(2.9)
    assert not transport.closing
    clock.advance(0.2)
    assert transport.closing


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_bug_in_a_session_ends_its_connection_only(
    lines: Hub[LineSession], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("pigeon.transport")
    records = Records()
    monkeypatch.setattr(logger, "propagate", False)  # the expected ERROR fails no test
    logger.addHandler(records)
    try:
        connection, transport = opened(lines, clock)
        other, other_transport = opened(lines, clock)
        connection.data_received(b"boom\n")
        other.data_received(b"fine\n")
        clock.run()
    finally:
        logger.removeHandler(records)
    assert records.messages == ["internal error on connection 127.0.0.1:40000"]
    assert transport.writes == [b"internal error\n"]
    assert transport.closing
    assert other_transport.writes == [b"fine\n"]
    assert not other_transport.closing


def test_shutdown_says_goodbye_then_closes(lines: Hub[LineSession], clock: ManualClock) -> None:
    connection, transport = opened(lines, clock)
    connection.data_received(b"unanswered\n")  # its answer is still queued
    connection.shutdown()
    assert transport.writes == [b"unanswered\nshutting down\n"]
    assert transport.closing
    clock.run()
    assert session_of(connection).lost
    assert lines.connections == set()
    assert lines.counts.connections_closed == 1


def test_the_connection_limit_refuses_before_a_session_exists(clock: ManualClock) -> None:
    lines = hub(LineSession, clock, limits=ConnectionLimits(max_connections=1))
    first, _ = connect(lines, clock)
    refused, transport = connect(lines, clock)
    assert transport.aborted
    assert refused.session is None
    assert lines.connections == {first}
    clock.run()
    assert lines.limits.sockets == 1
    assert lines.counts.connections_opened == 1


class FakeServer:
    def __init__(self) -> None:
        self.closed = False

    @property
    def sockets(self) -> list[object]:
        return []

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        assert self.closed


async def test_a_listener_closes_every_connection_and_waits_for_them() -> None:
    loop = asyncio.get_running_loop()
    clock = ManualClock()
    lines = hub(LineSession, clock)
    connections = []
    for _ in range(3):
        connection, transport = opened(lines, clock)
        transport.schedule = loop.call_soon  # the loss is reported by the real loop
        connections.append((connection, transport))
    server = FakeServer()
    await Listener(server, lines).close()
    assert server.closed
    for connection, transport in connections:
        assert transport.writes == [b"shutting down\n"]
        assert session_of(connection).lost
    assert lines.connections == set()
    assert lines.limits.sockets == 0
