"""Many brokers in one process: start and stop leave no tasks, threads, sockets or fds behind."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable

from pigeon.broker import Broker
from pigeon.config import Config

CYCLES = 100
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def config() -> Config:
    return Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=None
    )


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def settle(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Closed sockets may leave the fd table a moment after close; poll with a deadline."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


async def test_async_brokers_started_and_stopped_many_times_leak_nothing() -> None:
    current = asyncio.current_task()
    tasks_before = asyncio.all_tasks() - {current}
    fds_before = open_fds()
    threads_before = threading.active_count()
    for _ in range(CYCLES):
        async with Broker(config()) as broker:
            # A client connected while the broker stops: the broker must let it go.
            reader, writer = await asyncio.open_connection("127.0.0.1", broker.amqp_port)
            try:
                writer.write(AMQP_HEADER)
                assert await reader.read(7)  # the start of connection.start
                await broker.declare_queue("q")
                await broker.publish("", "q", b"x")
                await broker.stop()
            finally:
                writer.close()
                await writer.wait_closed()
    deadline = time.monotonic() + 5
    while open_fds() - fds_before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert open_fds() - fds_before == set()
    assert asyncio.all_tasks() - {current} == tasks_before
    assert threading.active_count() == threads_before


def test_thread_brokers_started_and_stopped_many_times_leak_nothing() -> None:
    fds_before = open_fds()
    threads_before = threading.active_count()
    for _ in range(CYCLES):
        client = socket.socket()
        try:
            with Broker.in_thread(config()) as broker:
                # The broker stops, leaving this block, while the client is connected.
                client.connect(("127.0.0.1", broker.amqp_port))
                client.sendall(AMQP_HEADER)
                assert client.recv(7)
                broker.sync.declare_queue("q")
                broker.sync.publish("", "q", b"x")
                assert broker.sync.wait_for(lambda b: b.queue("q").ready == 1)
        finally:
            client.close()
    settle(lambda: not open_fds() - fds_before)
    assert open_fds() - fds_before == set()
    assert threading.active_count() == threads_before
