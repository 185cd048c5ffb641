"""A broker's management API and a vhost of one's own on it, for Pigeon or RabbitMQ."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from helpers import wait_until


@dataclass
class Target:
    """A broker's management API and a fresh vhost on it."""

    base: str
    amqp: str  # the broker's AMQP URL without a vhost
    vhost: str
    user: str = "guest"
    password: str = "guest"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            self.base + "/api" + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as failed:
            raw = failed.read()
            return failed.code, json.loads(raw) if raw else None

    def put(self, path: str, body: Any) -> int:
        status, answer = self.call("PUT", path, body)
        assert status in (201, 204), (path, status, answer)
        return status

    @property
    def v(self) -> str:
        return urllib.parse.quote(self.vhost, safe="")

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@{self.amqp}/{self.v}"

    def queue(self, name: str, policy: str | None) -> Any:
        """The queue's API object once it shows ``policy`` (RabbitMQ's management
        database learns of policies with the next statistics emission, up to 5 s later)."""

        def shown() -> Any:
            status, answer = self.call("GET", f"/queues/{self.v}/{name}")
            assert status == 200, answer
            return answer if answer.get("policy", "?") == policy else None

        return wait_until(shown, timeout=15, interval=0.1)
