"""Test doubles for the WebSocket layer: an echo protocol and a WebSocket client's frames.

The echo session stands in for a protocol (MQTT, in production), not for the broker:
it opens at once, echoes every byte, closes after it has read ``bye``, and says
``shutdown`` when the broker shuts it down.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pigeon.transport.session import Keepalive, Peer, Phase, Waiter

MASK = b"\x37\xfa\x21\x3d"


class EchoSession:
    def __init__(self, peer: Peer, want_flush: Callable[[], None]) -> None:
        self.peer = peer
        self.want_flush = want_flush
        self.received = bytearray()
        self._pending = bytearray()
        self._out = bytearray()
        self._phase = Phase.OPEN
        self.lost = False
        self.output_paused = False
        self.keepalive_asked = False

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def blocked(self) -> bool:
        return False

    def receive_data(self, data: bytes) -> None:
        self._pending += data

    def process(self, budget: int) -> bool:
        if self._pending and self._phase is Phase.OPEN:
            self.received += self._pending
            self._out += self._pending
            if b"bye" in self.received:
                self._phase = Phase.CLOSED
            self.want_flush()
        self._pending.clear()
        return False

    def throttle(self) -> Waiter | None:
        return None

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def output_flushed(self) -> None:
        pass

    def pause_output(self) -> None:
        self.output_paused = True

    def resume_output(self) -> None:
        self.output_paused = False

    def keepalive(self) -> Keepalive | None:
        self.keepalive_asked = True
        return None

    def send_heartbeat(self) -> None:
        self._out += b"beat"

    def internal_error(self) -> None:
        self._phase = Phase.CLOSED

    def shutdown(self) -> None:
        self._out += b"shutdown"
        self._phase = Phase.CLOSED
        self.want_flush()

    def connection_lost(self) -> None:
        self.lost = True


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bytes | None = MASK,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """A client's frame, masked byte by byte (the slow, obvious way: an oracle)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 0x10000:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each whole server frame in ``data``; server frames are
    final and unmasked."""
    frames, position = [], 0
    while position < len(data):
        b0, b1 = data[position], data[position + 1]
        assert b0 & 0xF0 == 0x80, "a server frame is final, without reserved bits"
        assert not b1 & 0x80, "a server frame is not masked"
        n, position = b1 & 0x7F, position + 2
        if n == 126:
            (n,) = struct.unpack_from("!H", data, position)
            position += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, position)
            position += 8
        frames.append((b0 & 0x0F, data[position : position + n]))
        position += n
    assert position == len(data), "a partial frame"
    return frames


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason
