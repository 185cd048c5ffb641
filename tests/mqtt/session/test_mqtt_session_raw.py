"""CONNECT refusals as bytes on a raw socket: the 3.1.1 return codes a client sees."""

from __future__ import annotations

import socket
import struct

from pigeon.broker import Broker


def _string(text: bytes) -> bytes:
    return struct.pack(">H", len(text)) + text


def _connect_311(
    client_id: bytes, *, clean: bool, user: bytes | None = None, password: bytes | None = None
) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if user is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = _string(b"MQTT") + bytes([4, flags]) + struct.pack(">H", 60) + _string(client_id)
    if user is not None:
        body += _string(user)
    if password is not None:
        body += _string(password)
    return bytes([0x10, len(body)]) + body


def _exchange(broker: Broker, packet: bytes) -> bytes:
    assert broker.mqtt_port is not None
    with socket.create_connection(("127.0.0.1", broker.mqtt_port), timeout=5) as sock:
        sock.sendall(packet)
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                break
            answer += chunk
        return answer


def test_an_empty_client_id_needs_a_clean_session(broker: Broker) -> None:
    # [MQTT-3.1.3-8]: return code 0x02, identifier rejected
    assert _exchange(broker, _connect_311(b"", clean=False)) == b"\x20\x02\x00\x02"


def test_an_empty_client_id_with_a_clean_session_is_accepted(broker: Broker) -> None:
    assert _exchange(broker, _connect_311(b"", clean=True)) == b"\x20\x02\x00\x00"


def test_a_wrong_password_gets_return_code_4(broker: Broker) -> None:
    packet = _connect_311(b"raw-1", clean=True, user=b"guest", password=b"nope")
    assert _exchange(broker, packet) == b"\x20\x02\x00\x04"


def test_an_unknown_vhost_gets_return_code_5(broker: Broker) -> None:
    packet = _connect_311(b"raw-2", clean=True, user=b"nowhere:guest", password=b"guest")
    assert _exchange(broker, packet) == b"\x20\x02\x00\x05"


def test_a_password_without_a_username_is_refused(broker: Broker) -> None:
    # [MQTT-3.1.2-22]; the codec or the session refuses it: never accepted
    answer = _exchange(broker, _connect_311(b"raw-3", clean=True, password=b"x"))
    assert answer != b"\x20\x02\x00\x00"
