"""The message-size histogram (Grafana's ``rabbitmq_message_size_bytes``) counts each body
in RabbitMQ's buckets, whether a run's bodies share a bucket or not."""

from __future__ import annotations

from bisect import bisect_left

import pytest

from pigeon.core.message import SIZE_BOUNDS, Message, MessageSizes, Properties


def run(*sizes: int) -> list[Message]:
    return [Message("", "q", Properties(), bytes(size)) for size in sizes]


def expected(*sizes: int) -> list[int]:
    counts = [0] * (len(SIZE_BOUNDS) + 1)
    for size in sizes:
        counts[bisect_left(SIZE_BOUNDS, size)] += 1
    return counts


@pytest.mark.parametrize(
    "sizes",
    [
        (16, 16, 16),  # one bucket
        (0, 100),  # the first bound is inclusive (le="100")
        (100, 101),  # either side of a bound
        (16, 1024, 2000, 20_000),  # several buckets
        (1024,),
    ],
)
def test_a_run_counts_each_body_in_its_bucket(sizes: tuple[int, ...]) -> None:
    histogram = MessageSizes()
    histogram.add_run(run(*sizes))
    histogram.add_run(run(*sizes))
    assert histogram.counts == [2 * n for n in expected(*sizes)]
    assert histogram.total == 2 * sum(sizes)
