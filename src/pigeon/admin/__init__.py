"""Management: the HTTP API (RabbitMQ-compatible), Prometheus metrics and the web UI."""

from __future__ import annotations

from pigeon.admin.server import ManagementServer, start_management

__all__ = ["ManagementServer", "start_management"]
