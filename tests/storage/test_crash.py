"""SIGKILL at a random moment never loses a message whose sync had completed.

A child process adds and removes messages with a sync after each, reporting
every completed sync; the parent kills it at a random moment, reopens the
folder and checks: every confirmed message that was never removed is there,
intact; every removal that was confirmed stays removed; nothing else appears.
The same folder goes through every cycle, like a broker that keeps crashing.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from store_helpers import Opener

CHILD = Path(__file__).with_name("crash_child.py")
SEQS_PER_CYCLE = 10_000_000


@dataclass
class Ledger:
    added: set[int] = field(default_factory=set)
    removing: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)

    def record(self, lines: list[bytes]) -> None:
        sets = {b"A": self.added, b"I": self.removing, b"R": self.removed}
        for line in lines:
            kind, _, seq = line.partition(b" ")
            if kind in sets and seq.isdigit():
                sets[kind].add(int(seq))


def run_and_kill(data_dir: Path, first_seq: int, rng: random.Random) -> list[bytes]:
    """Start a writer child, SIGKILL it at a random moment, return what it reported."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(first_seq)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    try:
        ready = child.stdout.readline()
        if ready != b"ready\n":
            pytest.fail(f"the writer child did not start: {child.stderr.read().decode()[-2000:]}")
        # The point of the test: kill at an arbitrary moment of its writing.
        # Meanwhile keep reading, so that the child never waits on a full pipe.
        deadline = time.monotonic() + rng.uniform(0.02, 0.4)
        output = bytearray()
        while (left := deadline - time.monotonic()) > 0:
            if select.select([child.stdout], [], [], left)[0]:
                output += os.read(child.stdout.fileno(), 1 << 16)
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        return (bytes(output) + rest).splitlines()
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


async def check_cycles(open_store: Opener, data_dir: Path, cycles: int) -> None:
    rng = random.Random()
    ledger = Ledger()
    confirmed_any = False
    for cycle in range(cycles):
        ledger.record(run_and_kill(data_dir, cycle * SEQS_PER_CYCLE, rng))
        confirmed_any = confirmed_any or bool(ledger.added)
        store = open_store()
        snapshot = store.load()
        store.close()
        stored = snapshot.messages.get(("/", "q"), [])
        present = {m.seq for m in stored}
        lost = ledger.added - ledger.removing - present
        assert not lost, f"cycle {cycle}: confirmed messages lost: {sorted(lost)[:20]}"
        back = ledger.removed & present
        assert not back, f"cycle {cycle}: confirmed removals came back: {sorted(back)[:20]}"
        assert max(present, default=0) < (cycle + 1) * SEQS_PER_CYCLE
        for m in stored:
            digits = str(m.seq).encode()
            assert m.message.body == digits * (len(m.message.body) // len(digits))
        assert [m.seq for m in stored] == sorted(present)
        if cycle % 25 == 24:
            # Keep long runs fast: start the queue afresh now and then (the
            # folder and its files stay).
            store = open_store()
            store.load()
            store.purge("/", "q")
            store.close()
            ledger = Ledger()
    assert confirmed_any, "the children confirmed nothing: the test tested nothing"


@pytest.mark.timeout(180)
async def test_sigkill_loses_nothing_confirmed(open_store: Opener, data_dir: Path) -> None:
    await check_cycles(open_store, data_dir, 20)


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_sigkill_loses_nothing_confirmed_many_cycles(
    open_store: Opener, data_dir: Path
) -> None:
    await check_cycles(open_store, data_dir, 300)
