"""The WebSocket layer without sockets: HTTP upgrade and frames in, frames out.

Each test drives :class:`WebSocketSession` around an echo session with bytes and
reads the bytes it answers (RFC 6455 is the reference; RabbitMQ's Web MQTT plugin
where a client can see the difference).
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websocket_echo import EchoSession, client_frame, close_payload, server_frames

from pigeon.transport.session import Peer, Phase
from pigeon.transport.websocket import WebSocketSession, WebSocketSettings
from pigeon.transport.websocket_frames import unmask
from pigeon.transport.websocket_upgrade import accept_key

BINARY, TEXT, CONT, CLOSE, PING, PONG = 0x2, 0x1, 0x0, 0x8, 0x9, 0xA
MQTT = WebSocketSettings(subprotocols=("mqtt",))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example


def request(
    path: str = "/ws",
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    protocol: str | None = "mqtt",
    ws_version: str = "13",
    key: str | None = KEY,
    extra: str = "",
    upgrade: str = "websocket",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1:15675", f"Upgrade: {upgrade}"]
    lines += ["Connection: keep-alive, Upgrade", f"Sec-WebSocket-Version: {ws_version}"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if protocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


class Harness:
    """A WebSocket session, the flush requests it made, and its echo session."""

    def __init__(self, settings: WebSocketSettings = MQTT) -> None:
        self.flushes = 0
        self.ws: WebSocketSession[EchoSession] = WebSocketSession(
            Peer("127.0.0.1:40000", True), self._flush, EchoSession, settings
        )

    def _flush(self) -> None:
        self.flushes += 1

    def feed(self, data: bytes) -> bytes:
        self.ws.receive_data(data)
        self.ws.process(128)
        return self.ws.data_to_send()

    @property
    def echo(self) -> EchoSession:
        inner = self.ws.inner
        assert inner is not None
        return inner


def opened(settings: WebSocketSettings = MQTT) -> Harness:
    harness = Harness(settings)
    answer = harness.feed(request())
    assert answer.startswith(b"HTTP/1.1 101 ")
    return harness


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- the upgrade --------------------------------------------------------------------------


def test_upgrade_answers_101_with_the_accept_key_and_mqtt() -> None:
    harness = Harness()
    answer = harness.feed(request(protocol="mqttv3.1, mqtt", extra="Origin: https://app.test\r\n"))
    head = answer.decode().split("\r\n")
    assert head[0] == "HTTP/1.1 101 Switching Protocols"
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455 §1.3
    assert "Sec-WebSocket-Protocol: mqtt" in head
    assert answer.endswith(b"\r\n\r\n")
    assert harness.ws.phase is Phase.OPEN
    request_seen = harness.echo.peer.websocket
    assert request_seen is not None
    assert (request_seen.origin, request_seen.subprotocol) == ("https://app.test", "mqtt")
    assert request_seen.target == "/ws"


def test_accept_key_of_rfc_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_no_subprotocol_is_named_when_none_is_configured() -> None:
    harness = Harness(WebSocketSettings(path="/echo"))
    answer = harness.feed(request("/echo?token=1", protocol=None))
    assert status(answer) == 101
    assert b"Sec-WebSocket-Protocol" not in answer


@pytest.mark.parametrize(
    ("data", "code", "header"),
    [
        (request("/mqtt"), 404, None),
        (request(protocol=None), 400, None),  # RabbitMQ's Web MQTT: 400 without 'mqtt'
        (request(protocol="mqttv3.1"), 400, None),
        (request(ws_version="8"), 426, b"Sec-WebSocket-Version: 13"),
        (request(key=None), 400, None),
        (request(key="c2hvcnQ="), 400, None),
        (request(method="POST"), 405, b"Allow: GET"),
        (request(version="HTTP/1.0"), 400, None),
        (request(upgrade="h2c"), 426, b"Upgrade: websocket"),
        (request(extra=" folded\r\n"), 400, None),
        (b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 400, None),  # no Host
        (request(extra="X-Big: " + "a" * 20000 + "\r\n"), 431, None),
    ],
)
def test_refused_upgrades(data: bytes, code: int, header: bytes | None) -> None:
    harness = Harness()
    answer = harness.feed(data)
    assert status(answer) == code
    assert b"Connection: close" in answer
    if header is not None:
        assert header in answer
    assert harness.ws.phase is Phase.LINGER  # the glue reads what follows, then closes
    assert harness.ws.inner is None


def test_oversized_request_is_refused_before_its_end() -> None:
    harness = Harness(WebSocketSettings(max_request_size=1024))
    answer = harness.feed(b"GET /ws HTTP/1.1\r\nX-Flood: " + b"a" * 2000)
    assert status(answer) == 431


def test_upgrade_request_in_pieces() -> None:
    harness = Harness()
    data = request() + client_frame(BINARY, b"early")
    answer = b"".join(harness.feed(data[i : i + 1]) for i in range(len(data)))
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert status(head) == 101
    assert server_frames(rest) == [(BINARY, bytes([c])) for c in b"early"]


# -- frames -------------------------------------------------------------------------------


def test_binary_frames_reach_the_inner_session_and_its_output_is_framed() -> None:
    harness = opened()
    answer = harness.feed(client_frame(BINARY, b"\x10\x0c\x00\x04MQTT") + client_frame(BINARY))
    assert bytes(harness.echo.received) == b"\x10\x0c\x00\x04MQTT"
    assert server_frames(answer) == [(BINARY, b"\x10\x0c\x00\x04MQTT")]


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 200_000])
def test_length_encodings(size: int) -> None:
    harness = opened()
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert server_frames(harness.feed(client_frame(BINARY, payload))) == [(BINARY, payload)]


def test_fragmented_message_with_a_ping_inside() -> None:
    harness = opened()
    data = (
        client_frame(BINARY, b"one ", fin=False)
        + client_frame(PING, b"are you there")
        + client_frame(CONT, b"two ", fin=False)
        + client_frame(CONT, b"three")
    )
    frames = server_frames(harness.feed(data))
    assert (PONG, b"are you there") in frames
    assert b"".join(p for op, p in frames if op == BINARY) == b"one two three"
    assert bytes(harness.echo.received) == b"one two three"


def test_pong_is_ignored_and_ping_answered() -> None:
    harness = opened()
    assert harness.feed(client_frame(PONG, b"unsolicited")) == b""
    assert server_frames(harness.feed(client_frame(PING))) == [(PONG, b"")]


def test_a_payload_byte_like_a_frame_start_is_payload() -> None:
    # The last piece of a fragmented message, whose masked payload byte happens to be
    # 0x82 (the first byte of a short binary frame), must be read as payload. The mask
    # is chosen so that the masked byte is 0x82.
    harness = opened()
    mask = bytes([0x82 ^ 0xB5, 1, 2, 3])
    data = (
        client_frame(BINARY, b"\x00", fin=False)
        + client_frame(CONT, b"\xb5", mask=mask)
        + client_frame(BINARY, b"")
        + client_frame(BINARY, b"")
    )
    assert data[13] == 0x82  # the continuation's masked payload byte
    frames = server_frames(harness.feed(data))
    assert bytes(harness.echo.received) == b"\x00\xb5"
    assert frames == [(BINARY, b"\x00\xb5")]


frame_lists = st.lists(
    st.one_of(
        st.tuples(st.just(BINARY), st.binary(max_size=300)),
        st.tuples(st.just(PING), st.binary(max_size=125)),
    ),
    max_size=8,
)


@given(frames=frame_lists, fragment=st.integers(1, 40), cuts=st.lists(st.integers(0, 4000)))
def test_every_split_of_the_input_gives_the_same_result(
    frames: list[tuple[int, bytes]], fragment: int, cuts: list[int]
) -> None:
    data = bytearray()
    for opcode, payload in frames:
        if opcode == BINARY and len(payload) > fragment:  # as a fragmented message
            pieces = [payload[i : i + fragment] for i in range(0, len(payload), fragment)]
            data += client_frame(BINARY, pieces[0], fin=False)
            for piece in pieces[1:-1]:
                data += client_frame(CONT, piece, fin=False)
            data += client_frame(CONT, pieces[-1])
        else:
            data += client_frame(opcode, payload)
    harness = opened()
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    answer = b"".join(harness.feed(bytes(data[a:b])) for a, b in itertools.pairwise(points))
    out = server_frames(answer)
    sent = b"".join(p for op, p in frames if op == BINARY)
    assert bytes(harness.echo.received) == sent
    assert b"".join(p for op, p in out if op == BINARY) == sent
    # Pings read in one turn get one pong, for the last of them (RFC 6455 §5.5.3).
    pongs = [p for op, p in out if op == PONG]
    pings = [p for op, p in frames if op == PING]
    remaining = iter(pings)
    assert all(pong in remaining for pong in pongs)  # in order, none made up
    assert pongs[-1:] == pings[-1:]  # and the last ping is answered
    assert harness.ws.phase is Phase.OPEN


@given(
    data=st.binary(max_size=200), mask=st.binary(min_size=4, max_size=4), offset=st.integers(0, 9)
)
def test_unmask_matches_a_byte_by_byte_xor(data: bytes, mask: bytes, offset: int) -> None:
    expected = bytes(b ^ mask[(i + offset) % 4] for i, b in enumerate(data))
    assert unmask(data, mask, offset) == expected
    assert unmask(memoryview(data), mask, offset) == expected


# -- closing ------------------------------------------------------------------------------


def test_peer_close_is_answered_with_its_code_after_earlier_data() -> None:
    harness = opened()
    data = client_frame(BINARY, b"last words") + client_frame(CLOSE, close_payload(1000, b"done"))
    data += client_frame(BINARY, b"after the close")
    frames = server_frames(harness.feed(data))
    assert bytes(harness.echo.received) == b"last words"
    assert frames[-1] == (CLOSE, close_payload(1000))
    assert harness.ws.phase is Phase.CLOSED  # the server closes the TCP connection first


def test_peer_close_without_code_is_answered_without_code() -> None:
    harness = opened()
    assert server_frames(harness.feed(client_frame(CLOSE))) == [(CLOSE, b"")]
    assert harness.ws.phase is Phase.CLOSED


def test_inner_close_sends_its_output_then_close_and_waits_for_the_answer() -> None:
    harness = opened()
    frames = server_frames(harness.feed(client_frame(BINARY, b"bye")))
    assert frames == [(BINARY, b"bye"), (CLOSE, close_payload(1000))]
    assert harness.ws.phase is Phase.CLOSING
    before = harness.flushes
    assert harness.feed(client_frame(BINARY, b"ignored") + client_frame(CLOSE)) == b""
    assert bytes(harness.echo.received) == b"bye"
    assert harness.ws.phase is Phase.CLOSED
    assert harness.flushes > before  # the glue is asked to act on the phase


def test_shutdown_says_goodbye_then_1001() -> None:
    harness = opened()
    harness.ws.shutdown()
    frames = server_frames(harness.ws.data_to_send())
    assert frames == [(BINARY, b"shutdown"), (CLOSE, close_payload(1001, b"server shutdown"))]
    assert harness.ws.phase is Phase.CLOSING


def test_shutdown_before_the_upgrade_answers_503() -> None:
    harness = Harness()
    harness.ws.shutdown()
    assert status(harness.ws.data_to_send()) == 503


def close_code(answer: bytes) -> int:
    frames = server_frames(answer)
    assert frames[-1][0] == CLOSE
    (code,) = struct.unpack_from("!H", frames[-1][1])
    return int(code)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(BINARY, b"plain", mask=None), 1002),  # RFC 6455 §5.1
        (client_frame(TEXT, b"CONNECT"), 1003),  # RabbitMQ's Web MQTT: 1003
        (client_frame(BINARY, b"x", rsv=4), 1002),
        (client_frame(0x3, b"x"), 1002),
        (client_frame(CONT, b"x"), 1002),
        (client_frame(BINARY, b"a", fin=False) + client_frame(BINARY, b"b"), 1002),
        (client_frame(PING, b"x" * 126), 1002),
        (client_frame(PING, b"x", fin=False), 1002),
        (client_frame(CLOSE, b"\x03"), 1002),
        (client_frame(CLOSE, close_payload(1005)), 1002),
        (client_frame(CLOSE, close_payload(999)), 1002),
        (client_frame(CLOSE, close_payload(1000, b"\xff\xfe")), 1007),
        (client_frame(BINARY, length=2**63)[:10], 1002),
    ],
)
def test_protocol_errors_close_with_their_code(data: bytes, code: int) -> None:
    harness = opened()
    assert close_code(harness.feed(data)) == code
    # Nothing of the bad frame reaches the protocol (a fragment before it may have).
    assert bytes(harness.echo.received) in (b"", b"a")
    # After a bad close frame nothing can follow: the socket closes at once.
    closed = data[0] & 0x0F == CLOSE
    assert harness.ws.phase is (Phase.CLOSED if closed else Phase.CLOSING)


def test_after_a_fault_the_peers_close_is_still_read() -> None:
    harness = opened(WebSocketSettings(subprotocols=("mqtt",), max_frame_size=1000))
    # A frame over the limit, whose payload follows, then the peer's close answer.
    too_big = client_frame(BINARY, b"z" * 5000)
    answer = harness.feed(too_big[:100])
    assert close_code(answer) == 1009
    assert harness.ws.phase is Phase.CLOSING
    harness.feed(too_big[100:] + client_frame(PING, b"late"))
    assert harness.ws.phase is Phase.CLOSING
    assert harness.feed(client_frame(CLOSE, close_payload(1009))) == b""
    assert harness.ws.phase is Phase.CLOSED
    assert bytes(harness.echo.received) == b""


def test_frame_over_the_limit_is_refused_from_its_header_alone() -> None:
    harness = opened(WebSocketSettings(subprotocols=("mqtt",), max_frame_size=1 << 20))
    header_only = client_frame(BINARY, length=1 << 31)  # 2 GiB announced, none sent
    assert close_code(harness.feed(header_only)) == 1009


def test_fragmented_message_over_the_limit() -> None:
    harness = opened(WebSocketSettings(subprotocols=("mqtt",), max_message_size=100))
    data = client_frame(BINARY, b"a" * 60, fin=False) + client_frame(CONT, b"b" * 60)
    assert close_code(harness.feed(data)) == 1009
    assert bytes(harness.echo.received) == b"a" * 60  # what came within the limit


# -- what passes through ------------------------------------------------------------------


def test_flow_control_and_keepalive_pass_through() -> None:
    harness = opened()
    assert harness.ws.keepalive() is None
    assert harness.echo.keepalive_asked
    harness.ws.pause_output()
    assert harness.echo.output_paused
    harness.ws.resume_output()
    assert not harness.echo.output_paused
    harness.ws.send_heartbeat()
    assert server_frames(harness.ws.data_to_send()) == [(BINARY, b"beat")]
    assert not harness.ws.blocked and harness.ws.throttle() is None
    harness.ws.connection_lost()
    assert harness.echo.lost


def test_internal_error_closes_with_1011() -> None:
    harness = opened()
    harness.ws.internal_error()
    assert close_code(harness.ws.data_to_send()) == 1011


def test_short_frame_over_a_small_limit() -> None:
    harness = opened(WebSocketSettings(subprotocols=("mqtt",), max_frame_size=10))
    assert server_frames(harness.feed(client_frame(BINARY, b"0123456789"))) == [
        (BINARY, b"0123456789")
    ]
    assert close_code(harness.feed(client_frame(BINARY, b"0123456789A"))) == 1009


def test_one_pong_answers_the_pings_since_the_last_flush_and_none_while_paused() -> None:
    harness = opened()
    harness.ws.receive_data(client_frame(PING, b"1") + client_frame(PING, b"2"))
    harness.ws.process(128)
    assert server_frames(harness.ws.data_to_send()) == [(PONG, b"2")]  # §5.5.3
    harness.ws.pause_output()
    for n in range(1000):  # a flood, while the peer reads nothing
        harness.feed(client_frame(PING, str(n).encode()))
    assert harness.ws.data_to_send() == b""
    before = harness.flushes
    harness.ws.resume_output()
    assert harness.flushes > before
    assert server_frames(harness.ws.data_to_send()) == [(PONG, b"999")]
