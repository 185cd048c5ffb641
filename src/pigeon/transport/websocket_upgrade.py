"""The HTTP/1.1 request that opens a WebSocket (RFC 6455 §4.2), read and answered without I/O.

:func:`read_request` takes the bytes of the request head and either accepts it
(the 101 answer and what the session behind it may want to know) or refuses it
with the HTTP status a browser would see, as RabbitMQ's Web MQTT plugin (cowboy)
answers: 404 off the configured path, 400 when no offered subprotocol is
supported, 426 with ``Sec-WebSocket-Version: 13`` for other versions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from pigeon.transport.session import WebSocketRequest

# §1.3: the GUID every server appends to the client's key.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key`` (§4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


class Refusal(Exception):
    """The request does not open a WebSocket: answer ``status`` and close."""

    def __init__(
        self, status: HTTPStatus, reason: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers

    def response(self) -> bytes:
        body = f"{self.reason}\n".encode()
        lines = [
            f"HTTP/1.1 {self.status.value} {self.status.phrase}",
            "Connection: close",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class Accepted:
    request: WebSocketRequest
    response: bytes  # the 101 answer


def _tokens(value: str | None) -> list[str]:
    """The comma-separated tokens of a list header (RFC 9110 §5.6.1)."""
    if value is None:
        return []
    return [token.strip() for token in value.split(",") if token.strip()]


def _headers(lines: list[str]) -> dict[str, str]:
    """Header fields by lower-case name; repeated fields joined with ", " (RFC 9110 §5.3)."""
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            # No folded lines (RFC 9112 §5.2), no space before the colon (§5.1).
            raise Refusal(HTTPStatus.BAD_REQUEST, "malformed header field")
        key = name.lower()
        value = value.strip(" \t")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def _request_line(line: str, path: str) -> str:
    """The request target, once the method, target and version are checked."""
    parts = line.split(" ")
    if len(parts) != 3:
        raise Refusal(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if version != "HTTP/1.1":  # §4.1: HTTP/1.1 or higher; HTTP/2 upgrades differently
        raise Refusal(HTTPStatus.BAD_REQUEST, "a WebSocket opens with an HTTP/1.1 request")
    if method != "GET":
        raise Refusal(
            HTTPStatus.METHOD_NOT_ALLOWED, "a WebSocket opens with GET", (("Allow", "GET"),)
        )
    if urlsplit(target).path != path:
        raise Refusal(HTTPStatus.NOT_FOUND, "not found")
    return target


def _check_upgrade(fields: dict[str, str]) -> str:
    """The client's key, once the request is a valid version-13 opening handshake."""
    if "host" not in fields:
        raise Refusal(HTTPStatus.BAD_REQUEST, "no Host header")
    if "websocket" not in (t.lower() for t in _tokens(fields.get("upgrade"))):
        raise Refusal(
            HTTPStatus.UPGRADE_REQUIRED,
            "this path serves WebSocket only",
            (("Upgrade", "websocket"),),
        )
    if "upgrade" not in (t.lower() for t in _tokens(fields.get("connection"))):
        raise Refusal(HTTPStatus.BAD_REQUEST, "Connection header without 'upgrade'")
    if fields.get("sec-websocket-version") != "13":
        # §4.4: name the versions we speak.
        raise Refusal(
            HTTPStatus.UPGRADE_REQUIRED,
            "unsupported WebSocket version",
            (("Sec-WebSocket-Version", "13"),),
        )
    key = fields.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except (ValueError, binascii.Error):
        raise Refusal(
            HTTPStatus.BAD_REQUEST, "Sec-WebSocket-Key is not 16 bytes in base64"
        ) from None
    return key


def _subprotocol(fields: dict[str, str], supported: tuple[str, ...]) -> str | None:
    """The first of ``supported`` that the client offers; None if none is asked for."""
    if not supported:
        return None
    offered = _tokens(fields.get("sec-websocket-protocol"))
    for name in supported:
        if name in offered:
            return name
    # RabbitMQ's Web MQTT answers 400 when 'mqtt' is not offered ([MQTT-6.0.0-3]).
    wanted = ", ".join(repr(name) for name in supported)
    raise Refusal(HTTPStatus.BAD_REQUEST, f"no supported subprotocol offered ({wanted})")


def read_request(head: bytes, path: str, subprotocols: tuple[str, ...]) -> Accepted:
    """Check the request ``head`` (up to the blank line); raise :class:`Refusal` if it
    does not open a WebSocket on ``path`` with one of ``subprotocols``."""
    text = head.decode("latin-1")  # header bytes outside ASCII are opaque (RFC 9110 §5.5)
    request_line, *lines = text.split("\r\n")
    target = _request_line(request_line, path)
    fields = _headers(lines)
    key = _check_upgrade(fields)
    subprotocol = _subprotocol(fields, subprotocols)
    answer = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if subprotocol is not None:
        answer.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    request = WebSocketRequest(
        target=target,
        origin=fields.get("origin"),
        subprotocol=subprotocol,
        headers=tuple(fields.items()),
    )
    return Accepted(request, ("\r\n".join(answer) + "\r\n\r\n").encode("latin-1"))
