"""A process that writes to a store until it is SIGKILLed (run by test_crash.py).

Run as ``python crash_child.py DATA_DIR FIRST_SEQ``. It writes lines to its
stdout: ``ready`` once loaded; ``A <seq>`` when the sync after
adding ``seq`` has run (the moment a broker would confirm it); ``I <seq>``
just before removing a confirmed message; ``R <seq>`` when the sync after
that remove has run. Each line is one unbuffered write to the pipe, so a
SIGKILL loses nothing that was reported.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections import deque
from pathlib import Path

from pigeon.core.message import Message, Properties
from pigeon.storage.sqlite import SQLiteStore


def say(line: bytes) -> None:
    os.write(1, line + b"\n")


async def write_forever(path: Path, seq: int) -> None:
    store = SQLiteStore(path, loop=asyncio.get_running_loop())
    store.load()
    say(b"ready")
    rng = random.Random()
    confirmed: deque[int] = deque()

    def added(n: int) -> None:
        say(b"A %d" % n)
        confirmed.append(n)

    while True:
        for _ in range(rng.randint(1, 40)):
            body = str(seq).encode() * rng.randint(1, 200)
            store.add_message("/", "q", seq, Message("", "q", Properties(durable=True), body))
            store.sync(lambda n=seq: added(n))
            seq += 1
        while len(confirmed) > 50:
            n = confirmed.popleft()
            say(b"I %d" % n)
            store.remove_message("/", "q", n)
            store.sync(lambda n=n: say(b"R %d" % n))
        if store.queued_writes > 1000:
            # Flow control, as the broker does it: wait for the writer to catch up,
            # or a busy loop starves the writer thread of the interpreter lock.
            caught_up = asyncio.Event()
            store.sync(caught_up.set)
            await caught_up.wait()
        else:
            await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(write_forever(Path(sys.argv[1]), int(sys.argv[2])))
