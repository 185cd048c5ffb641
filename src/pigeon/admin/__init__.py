"""Management: the HTTP API (RabbitMQ-compatible), Prometheus metrics and the web UI.

The server is imported on first use, so ``pigeon ctl`` (which only needs the
standard library) starts without loading aiohttp and prometheus-client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pigeon.admin.server import ManagementServer, start_management

__all__ = ["ManagementServer", "start_management"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pigeon.admin import server

        return getattr(server, name)
    raise AttributeError(f"module 'pigeon.admin' has no attribute {name!r}")
