"""One open channel as the connection's wire side sees it (amqp0-9-1 §4.2.6).

A :class:`WireChannel` knows whether the channel is closing, which replies are
held back on it (:class:`Hold`), and the content it is assembling from a
content-bearing method, its header frame and its body frames. It is not the
adapter's :class:`~pigeon.protocols.amqp091.channel.Channel`, which carries out
what the channel asks of the broker.
"""

from __future__ import annotations

from collections import deque
from struct import Struct

from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import Properties, decode_properties
from pigeon.protocols.amqp091.events import ContentReceived
from pigeon.protocols.amqp091.replies import HardError, ReplyCode

CLASS_METHOD = Struct(">HH")


class Hold:
    """Frames of one channel held back from a reply on (see ServerConnection.hold)."""

    __slots__ = ("done", "frames", "number", "state")

    def __init__(self, number: int, state: WireChannel) -> None:
        self.number = number
        self.state = state
        self.frames: list[bytes] = []
        self.done = False


class WireChannel:
    """An open channel's framing state and the content it is assembling."""

    __slots__ = (
        "close_code",
        "close_text",
        "closing",
        "encoded_props",
        "held",
        "method",
        "parts",
        "properties",
        "remaining",
    )

    def __init__(self) -> None:
        self.closing = False
        self.close_code = 0
        self.close_text = ""
        # Holds not released yet, oldest first; frames go to the newest.
        self.held: deque[Hold] = deque()
        self.reset()

    def reset(self) -> None:
        self.method: m.Method | None = None  # awaiting its header and body
        self.remaining = -1  # body bytes still expected; -1 until the header
        self.properties: Properties | None = None
        self.encoded_props = b""
        self.parts: list[memoryview] = []

    def decode_header(self, method: m.Method, payload: memoryview) -> tuple[int, Properties]:
        """The body size and properties of the content header for ``method``."""
        class_id, weight = CLASS_METHOD.unpack_from(payload) if len(payload) >= 4 else (0, 0)
        if class_id != method.CLASS_ID:
            raise unexpected_content(method, f"one for class {class_id}")
        if weight:  # §4.2.6.1: weight must be zero
            raise unexpected_content(method, "non content header frame")
        return decode_properties(payload)

    def expect_body(
        self,
        number: int,
        method: m.Method,
        body_size: int,
        properties: Properties,
        encoded_props: bytes,
    ) -> ContentReceived | None:
        """After the header: the whole content if it has no body, else None."""
        if body_size == 0:  # §4.2.6.2: no body frames follow
            self.reset()
            return ContentReceived(number, method, properties, b"", encoded_props)
        self.remaining = body_size
        self.properties = properties
        self.encoded_props = encoded_props
        return None

    def add_body(
        self, number: int, method: m.Method, payload: memoryview
    ) -> ContentReceived | None:
        """A body frame: the whole content once the declared size is reached."""
        remaining = self.remaining - len(payload)
        if remaining < 0:
            raise unexpected_content(method, "a body frame past the declared size", body=True)
        if remaining:
            self.remaining = remaining
            self.parts.append(payload)
            return None
        parts = self.parts
        # One copy: the body leaves the receive buffer, which can then be freed.
        body = b"".join((*parts, payload)) if parts else bytes(payload)
        properties, encoded_props = self.properties, self.encoded_props
        assert properties is not None
        self.reset()
        return ContentReceived(number, method, properties, body, encoded_props)


def method_error(code: ReplyCode, text: str, method: m.Method) -> HardError:
    return HardError(code, text, method.CLASS_ID, method.METHOD_ID)


def unexpected_content(method: m.Method, got: str, body: bool = False) -> HardError:
    """505 with RabbitMQ's wording, naming the method whose content was expected."""
    expected = "content body" if body else f"content header for class {method.CLASS_ID}"
    return method_error(
        ReplyCode.UNEXPECTED_FRAME, f"expected {expected}, got {got} instead", method
    )
