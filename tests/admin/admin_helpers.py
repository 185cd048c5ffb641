"""Shared by the management tests: the broker as the admin layer sees it, an HTTP client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pigeon.admin import ManagementServer, start_management
from pigeon.broker import Broker
from pigeon.config import Config

SAMPLE_INTERVAL = 0.1


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A real HTTP client (urllib) against the management listener."""

    def __init__(self, base: str, user: str = "guest", password: str = "guest") -> None:
        self.base = base
        self.user = user
        self.password = password

    def as_user(self, user: str, password: str) -> Api:
        return Api(self.base, user, password)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        raw: bytes | None = None,
    ) -> Response:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as failed:
            return Response(failed.code, dict(failed.headers), failed.read())

    def get(self, path: str, **kwargs: Any) -> Any:
        answer = self.request("GET", path, **kwargs)
        assert answer.status == 200, (path, answer.status, answer.body)
        return answer.json()


@dataclass
class Running:
    broker: Broker
    server: ManagementServer
    api: Api

    @property
    def base(self) -> str:
        return self.api.base

    def on_loop(self, coroutine: Any) -> Any:
        assert self.broker.node is not None
        loop = self.broker.node.scheduler  # the broker's event loop
        assert isinstance(loop, asyncio.AbstractEventLoop)
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)

    def call(self, function: Any, *args: Any) -> Any:
        """Run a core call on the broker's loop thread, where core state lives."""

        async def run() -> Any:
            return function(*args)

        return self.on_loop(run())


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until true (a sample or a close happens on the broker's own clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


@contextmanager
def serving(config: Config) -> Iterator[Running]:
    """A broker on its own thread with its management server on the broker's loop."""
    with Broker.in_thread(config) as broker:
        loop = broker.node.scheduler if broker.node else None
        assert isinstance(loop, asyncio.AbstractEventLoop)
        server = asyncio.run_coroutine_threadsafe(
            start_management(broker, "127.0.0.1", 0, sample_interval=SAMPLE_INTERVAL), loop
        ).result(timeout=10)
        yield Running(broker, server, Api(f"http://127.0.0.1:{server.port}"))
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)
