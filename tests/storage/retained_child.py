"""A broker core over a data folder that retains messages until it is SIGKILLed
(run by ``test_retained_restart.py``).

Run as ``python retained_child.py DATA_DIR``. It retains ``keep/0`` .. ``keep/99``
(and clears ``keep/gone``), waits for the store's sync (the moment an MQTT PUBACK
could go out) and writes ``synced``; then it rewrites and clears ``churn/*`` topics
for ever, writing ``churn <n>`` after each sync, until it is killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pigeon.core.message import Message, Properties
from pigeon.core.node import Node
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.storage.sqlite import SQLiteStore

KEPT = 100


def say(line: bytes) -> None:
    os.write(1, line + b"\n")


def message(topic: str, body: bytes) -> Message:
    return Message("amq.topic", topic.replace("/", "."), Properties(), body)


async def synced(store: SQLiteStore) -> None:
    done = asyncio.Event()
    store.sync(done.set)
    await done.wait()


async def retain_forever(path: Path) -> None:
    store = SQLiteStore(path, loop=asyncio.get_running_loop())
    node = Node(asyncio.get_running_loop(), store=store, vocabulary=RABBITMQ)
    node.restore(store.load())
    retained = node.add_vhost("/").retained
    retained.retain("keep/gone", message("keep/gone", b"x"))
    for n in range(KEPT):
        retained.retain(f"keep/{n}", message(f"keep/{n}", b"kept %d" % n))
    retained.retain("keep/gone", message("keep/gone", b""))
    await synced(store)
    say(b"synced")
    n = 0
    while True:
        for i in range(50):
            topic = f"churn/{i}"
            retained.retain(topic, message(topic, b"" if (n + i) % 3 == 0 else b"%d" % n))
        await synced(store)
        say(b"churn %d" % n)
        n += 1


if __name__ == "__main__":
    asyncio.run(retain_forever(Path(sys.argv[1])))
