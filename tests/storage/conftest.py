"""Fixtures for the store tests: a data folder and a way to open, fill and reopen a store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import Opener

from pigeon.storage.sqlite import SQLiteStore


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def open_store(data_dir: Path) -> Iterator[Opener]:
    """``open_store(**options)`` → a store on ``data_dir``, not loaded; closed at teardown."""
    opened: list[SQLiteStore] = []

    def make(path: Path | None = None, **options: Any) -> SQLiteStore:
        store = SQLiteStore(path or data_dir, loop=asyncio.get_running_loop(), **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
