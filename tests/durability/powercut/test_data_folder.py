"""The data folder's own name survives a power cut (issue 13, part 5).

On the strict layer a new name reaches the disk only when the directory that
holds it is synced. SQLite syncs the data folder when it creates its WAL, but
nothing synced the data folder into its parent: a broker started on a new
folder confirmed messages, lost power, and came back without the folder.
Pigeon now syncs every folder it creates into its parent, and the data folder
into its parent at each start, whoever made it (ancestors it did not make are
left to whoever made them).
"""

from __future__ import annotations

import pytest

from ..clients import PERSISTENT, abandon, body_of, connect, declare, drain
from ..conftest import MakeBroker
from .conftest import MakeDisk

QUEUE = "powercut-folder"


@pytest.mark.parametrize("made_by", ["pigeon", "the user"])
def test_a_new_data_folder_and_what_was_confirmed_in_it_survive_a_power_cut(
    make_disk: MakeDisk, make_broker: MakeBroker, made_by: str
) -> None:
    disk = make_disk(strict=True)
    disk.mount()
    if made_by == "pigeon":
        folder = disk.mountpoint / "new" / "data"  # neither exists yet
    else:
        folder = disk.mountpoint / "data"
        folder.mkdir()  # ``mkdir data`` before the first start: not synced
    broker = make_broker(folder)
    broker.start()
    connection = connect(broker.url)
    try:
        channel = connection.channel()
        declare(channel, QUEUE)
        channel.confirm_delivery()
        for number in range(20):
            channel.basic_publish("", QUEUE, body_of(number), PERSISTENT)  # confirmed
    finally:
        abandon(connection)
    broker.kill()
    disk.cut()
    disk.mount()
    broker.start()
    assert [r.number for r in drain(broker.url, QUEUE)] == list(range(20))
    broker.stop()
