"""The connection handshake of AMQP 0-9-1 as data (amqp0-9-1 §4.2.2, §1.4.2).

After the protocol header the server sends connection.start, and each state of
the handshake then waits for one method of the client: :data:`HANDSHAKE` names
it, the state it leads to and the event it becomes. The adapter's answers
(``accept_login``, ``accept_open``...) take the other steps. :func:`negotiate`
settles the limits of connection.tune-ok.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import FRAME_MIN_SIZE, encode_method_frame
from pigeon.protocols.amqp091.events import (
    ConnState,
    Event,
    LoginRequested,
    OpenRequested,
    SecureOkReceived,
)
from pigeon.protocols.amqp091.replies import HardError, ReplyCode

# Before tune, frames are limited tighter than after (RabbitMQ: 8192 bytes), yet
# enough for an OAuth token in start-ok.
FRAME_MAX_BEFORE_TUNE = 8192


def start_frame(server_properties: dict[str, Any], mechanisms: tuple[str, ...]) -> bytes:
    """connection.start, the server's answer to a right protocol header."""
    start = m.ConnectionStart(
        version_major=0,
        version_minor=9,
        server_properties=server_properties,
        mechanisms=" ".join(mechanisms).encode(),
        locales=b"en_US",
    )
    return encode_method_frame(0, start)


def _login(method: m.Method) -> Event:
    assert isinstance(method, m.ConnectionStartOk)
    return LoginRequested(
        method.mechanism, method.response, method.client_properties, method.locale
    )


def _secure_ok(method: m.Method) -> Event:
    assert isinstance(method, m.ConnectionSecureOk)
    return SecureOkReceived(method.response)


def _open(method: m.Method) -> Event:
    assert isinstance(method, m.ConnectionOpen)
    return OpenRequested(method.virtual_host)


class Step(NamedTuple):
    """The method a handshake state waits for, the state it leads to, its event."""

    method: type[m.Method]
    next_state: ConnState
    event: Callable[[m.Method], Event] | None  # None: nothing for the adapter


HANDSHAKE: dict[ConnState, Step] = {
    ConnState.AWAITING_START_OK: Step(m.ConnectionStartOk, ConnState.SECURING, _login),
    ConnState.SECURING: Step(m.ConnectionSecureOk, ConnState.SECURING, _secure_ok),
    # Limits settled (negotiate): the client goes on with connection.open.
    ConnState.AWAITING_TUNE_OK: Step(m.ConnectionTuneOk, ConnState.AWAITING_OPEN, None),
    # OPEN once the adapter accepts the virtual host (accept_open).
    ConnState.AWAITING_OPEN: Step(m.ConnectionOpen, ConnState.AWAITING_OPEN, _open),
}


def negotiate(channel_max: int, frame_max: int, tune: m.ConnectionTuneOk) -> tuple[int, int]:
    """The channel_max and frame_max to use, given our offer and the client's
    tune-ok (§1.4.2.6); 0 from the client means "no limit of mine"."""
    wanted_channels = tune.channel_max or channel_max or 0xFFFF
    wanted_frame = tune.frame_max or frame_max
    if channel_max and wanted_channels > channel_max:
        raise _not_allowed(f"channel_max={wanted_channels} > {channel_max} max")
    if wanted_frame and wanted_frame < FRAME_MIN_SIZE:
        raise _not_allowed(f"frame_max={wanted_frame} < {FRAME_MIN_SIZE} min size")
    if frame_max and wanted_frame > frame_max:
        raise _not_allowed(f"frame_max={wanted_frame} > {frame_max} max size")
    return wanted_channels, wanted_frame


def _not_allowed(text: str) -> HardError:
    return HardError(
        ReplyCode.NOT_ALLOWED, text, m.ConnectionTuneOk.CLASS_ID, m.ConnectionTuneOk.METHOD_ID
    )
