"""What a :class:`~pigeon.protocols.amqp091.connection.ServerConnection` reports.

Its states, the ``NEED_DATA`` sentinel, and the events ``next_event()`` returns,
each naming how the adapter is expected to answer it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, NamedTuple, TypeAlias

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import Properties


class ConnState(Enum):
    AWAITING_HEADER = "awaiting_header"
    AWAITING_START_OK = "starting"
    SECURING = "securing"  # start-ok received; the adapter authenticates
    AWAITING_TUNE_OK = "tuning"
    AWAITING_OPEN = "opening"
    OPEN = "running"
    CLOSING = "closing"  # we sent connection.close; waiting for close-ok
    CLOSED = "closed"


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[_Sentinel.NEED_DATA] = _Sentinel.NEED_DATA
NeedData: TypeAlias = Literal[_Sentinel.NEED_DATA]  # the type of NEED_DATA


@dataclass(slots=True, frozen=True)
class BadProtocolHeader:
    """The client did not open with AMQP 0-9-1's header; we answered ours (§4.2.2)."""

    received: bytes


@dataclass(slots=True, frozen=True)
class LoginRequested:
    """connection.start-ok: answer with accept_login(), refuse_login() or send_secure()."""

    mechanism: str
    response: bytes
    client_properties: dict[str, Any]
    locale: str


@dataclass(slots=True, frozen=True)
class SecureOkReceived:
    response: bytes


@dataclass(slots=True, frozen=True)
class OpenRequested:
    """connection.open: answer with accept_open() or close()."""

    virtual_host: str


@dataclass(slots=True, frozen=True)
class UpdateSecretRequested:
    """connection.update-secret: answer with send_method(0, ConnectionUpdateSecretOk())."""

    new_secret: bytes
    reason: str


@dataclass(slots=True, frozen=True)
class ChannelOpened:
    channel: int


@dataclass(slots=True, frozen=True)
class ChannelClosed:
    """The channel is gone: closed by the client, or our close_channel() completed."""

    channel: int
    reply_code: int
    reply_text: str
    by_peer: bool


# The two per-message events are NamedTuples: building one costs a fraction of
# a frozen dataclass, and there is one per publish and per ack.
class MethodReceived(NamedTuple):
    channel: int
    method: m.Method


class ContentReceived(NamedTuple):
    """A content-bearing method with its properties and body, assembled.

    ``encoded_props`` is the wire form of ``properties`` (flags and list) to
    reuse when the message is delivered.
    """

    channel: int
    method: m.Method
    properties: Properties
    body: bytes
    encoded_props: bytes


@dataclass(slots=True, frozen=True)
class ConnectionClosed:
    """The close handshake is complete; by_peer tells who started it."""

    reply_code: int
    reply_text: str
    by_peer: bool


@dataclass(slots=True, frozen=True)
class ProtocolError:
    """The client broke the protocol; connection.close is queued, state is CLOSING."""

    reply_code: int
    text: str


@dataclass(slots=True, frozen=True)
class ConnectionLost:
    """End of input (receive_data(b"")) without a completed close handshake."""


Event = (
    BadProtocolHeader
    | LoginRequested
    | SecureOkReceived
    | OpenRequested
    | UpdateSecretRequested
    | ChannelOpened
    | ChannelClosed
    | MethodReceived
    | ContentReceived
    | ConnectionClosed
    | ProtocolError
    | ConnectionLost
)
