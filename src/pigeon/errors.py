"""Protocol-neutral errors raised by the core.

Each protocol maps these to its own answer in one table (for AMQP 0-9-1 see
``pigeon.protocols.amqp091.replies``). The core never knows reply codes.
"""

from __future__ import annotations


class PigeonError(Exception):
    """Root of the errors a client caused; anything else escaping is a bug."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class NotFound(PigeonError):
    """An exchange, queue or binding the client named does not exist."""


class AccessRefused(PigeonError):
    """The user may not do this to this resource."""


class ResourceLocked(PigeonError):
    """The resource is held exclusively by another connection or consumer."""


class PreconditionFailed(PigeonError):
    """Redeclare with other settings, a bad argument, an unknown delivery tag, ..."""


class NotAllowed(PigeonError):
    """Allowed in general, but not in this state (connection level)."""


class ResourceLimit(PigeonError):
    """A configured limit was reached (connection level)."""


class CommandInvalid(PigeonError):
    """A request that can never be valid, such as an unknown exchange type (connection level)."""


class NotSupported(PigeonError):
    """A request Pigeon deliberately does not implement, as RabbitMQ (connection level)."""


class InternalError(PigeonError):
    """The broker failed to do what it should have (connection level)."""


class MissingPackage(RuntimeError):
    """A setting needs an optional package that is not installed (not a client's error:
    ``pigeon serve`` reports it in one line, with the extra that installs it)."""

    def __init__(self, setting: str, package: str, extra: str) -> None:
        self.text = (
            f"{setting} needs the '{package}' package, which is not installed: "
            f"pip install 'pigeon-broker[{extra}]'"
        )
        super().__init__(self.text)
