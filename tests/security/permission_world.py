"""What the permission tests share: users' HTTP calls, the broker they run on, and the
topology each operation is tried against."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.broker import Broker

ALL = ".*"
NONE = "^$"
KINDS = ("configure", "write", "read")


class Http:
    def __init__(self, base: str, user: str, password: str) -> None:
        self.base, self.user, self.password = base, user, password

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as failed:
            raw = failed.read()
            try:
                return failed.code, json.loads(raw)
            except ValueError:
                return failed.code, raw


@dataclass
class World:
    broker: Broker
    admin: Http
    prefix: str

    def name(self, user: str) -> str:
        return f"{self.prefix}-{user}"

    def amqp(self, user: str) -> pika.BlockingConnection:
        credentials = pika.PlainCredentials(self.name(user), "pw")
        return pika.BlockingConnection(
            pika.ConnectionParameters("127.0.0.1", self.broker.amqp_port, credentials=credentials)
        )

    def http(self, user: str) -> Http:
        return Http(self.admin.base, self.name(user), "pw")


def topology(ch: BlockingChannel, n: str) -> None:
    ch.exchange_declare(f"x-{n}", "direct")
    ch.exchange_declare(f"x2-{n}", "fanout")
    ch.queue_declare(f"q-{n}")
    ch.queue_bind(f"q-{n}", f"x-{n}", "k")
    ch.exchange_bind(f"x2-{n}", f"x-{n}", "k")
