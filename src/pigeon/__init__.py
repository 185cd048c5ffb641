"""Pigeon: a message broker in Python that speaks AMQP 0-9-1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.version import __version__

__all__ = ["Broker", "__version__"]

if TYPE_CHECKING:
    from pigeon.broker import Broker


def __getattr__(name: str) -> object:
    # Imported lazily: the pytest plugin imports pigeon without wanting the whole broker.
    if name == "Broker":
        from pigeon.broker import Broker

        return Broker
    raise AttributeError(f"module 'pigeon' has no attribute {name!r}")
