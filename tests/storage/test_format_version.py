"""The data folder's format version: older folders are migrated at open, newer refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from store_helpers import Opener

from pigeon.storage.database import SCHEMA_VERSION
from pigeon.storage.sqlite import NewerFormat

LEGACY = Path(__file__).parent / "fixtures" / "pigeon-0.1"


def version_of(folder: Path) -> int:
    conn = sqlite3.connect(folder / "pigeon.db")
    try:
        [(value,)] = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall()
        return int(value)
    finally:
        conn.close()


def copy_legacy(data_dir: Path) -> None:
    shutil.copytree(LEGACY, data_dir, ignore=shutil.ignore_patterns("README.md"))


async def test_a_new_folder_has_the_current_version(open_store: Opener, data_dir: Path) -> None:
    open_store().load()
    assert version_of(data_dir) == SCHEMA_VERSION


async def test_a_01_folder_is_migrated_and_keeps_its_messages(
    open_store: Opener, data_dir: Path
) -> None:
    copy_legacy(data_dir)
    assert version_of(data_dir) == 1
    snapshot = open_store().load()
    assert version_of(data_dir) == SCHEMA_VERSION == 3
    assert sum(len(stored) for stored in snapshot.messages.values()) > 0


async def test_a_folder_of_a_newer_format_is_refused_untouched(
    open_store: Opener, data_dir: Path
) -> None:
    copy_legacy(data_dir)
    conn = sqlite3.connect(data_dir / "pigeon.db")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(NewerFormat, match="newer Pigeon"):
        open_store().load()
    assert version_of(data_dir) == SCHEMA_VERSION + 1
    # The folder is not held: a newer Pigeon (or this one, after the refusal) may open it.
    with pytest.raises(NewerFormat):
        open_store().load()
