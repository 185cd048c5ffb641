"""make_durable: the data folder and its missing parents are created (and synced).

That each new name really reaches the disk is shown on the strict power-cut
layer (tests/durability/powercut/test_data_folder.py); here, what it creates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pigeon.storage.folder import make_durable, sync_folder


@pytest.mark.parametrize("fsync", [True, False])
def test_missing_parents_are_created_and_existing_folders_kept(tmp_path: Path, fsync: bool) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "kept").write_text("x")
    make_durable(tmp_path / "a" / "b" / "c", fsync=fsync)
    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert (tmp_path / "a" / "kept").read_text() == "x"
    make_durable(tmp_path / "a" / "b" / "c", fsync=fsync)  # already there: nothing to do
    sync_folder(tmp_path / "a" / "b")


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(FileExistsError):
        make_durable(tmp_path / "data")
