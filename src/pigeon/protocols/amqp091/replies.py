"""AMQP 0-9-1 reply codes and the errors that carry them.

The codes are the spec's constants (amqp0-9-1 §1.2, "Constants"); a test checks
them against ``shared/spec/amqp-rabbitmq-0.9.1.json``. A hard error closes the
connection, a soft error closes only the channel (§2.3.7, "Error Handling").
"""

from __future__ import annotations

from enum import IntEnum


class ReplyCode(IntEnum):
    REPLY_SUCCESS = 200
    CONTENT_TOO_LARGE = 311
    NO_ROUTE = 312
    NO_CONSUMERS = 313
    CONNECTION_FORCED = 320
    INVALID_PATH = 402
    ACCESS_REFUSED = 403
    NOT_FOUND = 404
    RESOURCE_LOCKED = 405
    PRECONDITION_FAILED = 406
    FRAME_ERROR = 501
    SYNTAX_ERROR = 502
    COMMAND_INVALID = 503
    CHANNEL_ERROR = 504
    UNEXPECTED_FRAME = 505
    RESOURCE_ERROR = 506
    NOT_ALLOWED = 530
    NOT_IMPLEMENTED = 540
    INTERNAL_ERROR = 541

    @property
    def is_hard(self) -> bool:
        return self in _HARD


# The spec's "hard-error" class: these end the whole connection.
_HARD = frozenset(
    {
        ReplyCode.CONNECTION_FORCED,
        ReplyCode.INVALID_PATH,
        ReplyCode.FRAME_ERROR,
        ReplyCode.SYNTAX_ERROR,
        ReplyCode.COMMAND_INVALID,
        ReplyCode.CHANNEL_ERROR,
        ReplyCode.UNEXPECTED_FRAME,
        ReplyCode.RESOURCE_ERROR,
        ReplyCode.NOT_ALLOWED,
        ReplyCode.NOT_IMPLEMENTED,
        ReplyCode.INTERNAL_ERROR,
    }
)


def is_hard_error(code: int) -> bool:
    """True if ``code`` is a connection-level error in the spec's classification."""
    return code in _HARD


def reply_text(code: int, detail: str) -> str:
    """The reply text RabbitMQ's way: ``"NOT_FOUND - no queue 'q' in vhost '/'"``."""
    try:
        name = ReplyCode(code).name
    except ValueError:
        return detail
    return f"{name} - {detail}"


class AMQPError(Exception):
    """A client's protocol error, with the reply code to close with.

    ``class_id``/``method_id`` name the method that failed (0 when no method
    did, as for a malformed frame), as connection.close and channel.close carry.
    """

    def __init__(self, reply_code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(reply_code, text, class_id, method_id)
        self.reply_code = reply_code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    def __str__(self) -> str:
        return reply_text(self.reply_code, self.text)


class HardError(AMQPError):
    """Closes the connection (connection.close)."""
