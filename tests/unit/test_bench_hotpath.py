"""benchmarks.hotpath: the sans-IO hot-path measurement counts exactly what it drove."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # ``bench`` lives at the repository root, not under src/
    sys.path.insert(0, str(REPO))

from benchmarks import hotpath  # noqa: E402


def test_every_publish_is_delivered_and_confirmed() -> None:
    out = asyncio.run(
        hotpath.measure(size=64, count=2_000, rounds=2, batch=100, prefetch=1000, confirm=True)
    )
    assert out.published == out.delivered == 4_000
    assert out.confirmed == 40  # one multiple ack per batch of 100
    assert len(out.rounds_us) == 2 and out.best_us == min(out.rounds_us) > 0


def test_the_command_fails_when_counts_differ() -> None:
    # prefetch 10 with batches of 100: the broker holds messages back, so the ack of a
    # tag it never delivered closes the channel and the counts cannot match.
    assert (
        hotpath.main(["--count", "200", "--rounds", "1", "--batch", "100", "--prefetch", "10"]) == 1
    )
    assert hotpath.main(["--count", "200", "--rounds", "1", "--batch", "100"]) == 0
