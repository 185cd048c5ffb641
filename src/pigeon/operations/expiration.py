"""A message's ``expiration`` property, parsed as RabbitMQ does.

AMQP's ``expiration`` property, the HTTP API's and the embedded API's all take
RabbitMQ's string of milliseconds; each entry point converts it with this parser to
the neutral message's TTL, and the core never sees the string.
"""

from __future__ import annotations

from pigeon.errors import PreconditionFailed


def parse_expiration(text: str | None) -> int | None:
    """A message's ``expiration`` property as milliseconds, parsed as RabbitMQ does.

    RabbitMQ reads it with Erlang's ``string:to_integer`` and refuses anything
    but a non-negative integer, naming the problem the way Erlang does.
    """
    if text is None:
        return None
    digits = text.lstrip("+-")
    sign = text[: len(text) - len(digits)]
    end = 0
    while end < len(digits) and digits[end].isascii() and digits[end].isdigit():
        end += 1
    if end == 0 or len(sign) > 1:
        problem = "no_integer"
    elif end < len(digits):
        problem = f'{{leftover_string,"{digits[end:]}"}}'
    elif sign == "-" and int(digits) != 0:
        problem = f"{{value_negative,-{int(digits)}}}"
    else:
        return int(digits)
    raise PreconditionFailed(f"invalid expiration '{text}': {problem}")
