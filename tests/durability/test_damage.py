"""A damaged data folder never stops the broker: it starts, serves, keeps what is intact.

End to end, over AMQP, with the broker in a child process (the store-level
damage matrix is in tests/storage). One template folder is made as a crash
leaves it:

- queue ``intact`` with messages 0..99 and queue ``tail`` with 0..99, written
  before a clean stop (so they are in ``pigeon.db`` itself);
- then messages 1000..1059 in ``tail`` only, confirmed, and a SIGKILL (so they
  are only in ``pigeon.db-wal``).

Each case copies the template, damages one file, starts the broker and checks:
it serves a new client (declare, publish with confirm, get); every message it
gives back is byte-for-byte one that was written, in order; whatever was lost
is announced by a WARNING; and what the damage could not touch is all there
(damage to the WAL or its index never costs what the database file held).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika.exceptions
import pytest

from .broker_process import BrokerProcess
from .clients import PERSISTENT, body_of, connect, drain, number_of

DB, WAL, SHM = "pigeon.db", "pigeon.db-wal", "pigeon.db-shm"
SIZE = 1000
IN_DB = {"intact": set(range(100)), "tail": set(range(100))}
IN_WAL = {"tail": set(range(1000, 1060))}


def publish(url: str, queue: str, numbers: range) -> None:
    connection = connect(url)
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for number in numbers:
            channel.basic_publish("", queue, body_of(number, SIZE), PERSISTENT)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("damage")
    broker = BrokerProcess(base / "live")
    try:
        broker.start()
        for queue in IN_DB:
            publish(broker.url, queue, range(100))
        broker.stop()  # checkpointed: these are in pigeon.db
        broker.start()
        publish(broker.url, "tail", range(1000, 1060))
        broker.kill()  # these are in the WAL only
        broker.check_no_errors()
    finally:
        broker.kill()
    assert (base / "live" / WAL).stat().st_size > 0, "the template has no WAL to damage"
    shutil.copytree(base / "live", base / "template")
    yield base / "template"


def truncate(at: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with path.open("r+b") as f:
            f.truncate(int(path.stat().st_size * at))

    return damage


def truncate_last_byte(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 1)


def flip(at: float, count: int = 64) -> Callable[[Path], None]:
    """Invert ``count`` bytes at a fraction of the file (1.0: its last bytes)."""

    def damage(path: Path) -> None:
        size = path.stat().st_size
        offset = max(0, min(int(size * at), size - count))
        with path.open("r+b") as f:
            f.seek(offset)
            raw = f.read(count)
            f.seek(offset)
            f.write(bytes(b ^ 0xFF for b in raw))

    return damage


def delete(path: Path) -> None:
    path.unlink()


def zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(path.stat().st_size))


@dataclass(frozen=True)
class Case:
    file: str
    damage: Callable[[Path], None]
    keeps_db: bool  # the database file was not touched: all it held must come back
    keeps_wal: bool = False  # nothing of any file's content was touched


CASES = {
    "no-damage": Case(DB, lambda _path: None, keeps_db=True, keeps_wal=True),
    "shm-deleted": Case(SHM, delete, keeps_db=True, keeps_wal=True),
    "shm-zeroed": Case(SHM, zero, keeps_db=True, keeps_wal=True),
    "shm-garbage": Case(SHM, garbage, keeps_db=True, keeps_wal=True),
    "wal-deleted": Case(WAL, delete, keeps_db=True),
    "wal-truncated-half": Case(WAL, truncate(0.5), keeps_db=True),
    "wal-truncated-last-byte": Case(WAL, truncate_last_byte, keeps_db=True),
    "wal-tail-flipped": Case(WAL, flip(1.0), keeps_db=True),
    "wal-zeroed": Case(WAL, zero, keeps_db=True),
    "db-truncated-0": Case(DB, truncate(0), keeps_db=False),
    "db-truncated-half": Case(DB, truncate(0.5), keeps_db=False),
    "db-truncated-9/10": Case(DB, truncate(0.9), keeps_db=False),
    "db-tail-flipped": Case(DB, flip(1.0), keeps_db=False),
    "db-middle-flipped": Case(DB, flip(0.5, 256), keeps_db=False),
    "db-zeroed": Case(DB, zero, keeps_db=False),
    "db-garbage": Case(DB, garbage, keeps_db=False),
}


# A WAL cut inside a frame (wal-truncated-*) loses the transaction at its end; the
# broker must say so (database.py _check_wal_frames), as for every other case.
PARAMS = list(CASES)


def recovered(url: str, queue: str) -> list[int] | None:
    """The numbers left in ``queue`` in delivery order; None if the queue is gone."""
    try:
        got = drain(url, queue, size=SIZE)
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 404, closed
        return None
    assert all(r.redelivered for r in got), f"{queue}: recovered without redelivered"
    return [r.number for r in got]


def serves_new_clients(url: str) -> None:
    connection = connect(url)
    try:
        channel = connection.channel()
        channel.queue_declare("after-damage", durable=True)
        channel.confirm_delivery()
        channel.basic_publish("", "after-damage", body_of(7, SIZE), PERSISTENT)
        method, _props, body = channel.basic_get("after-damage", auto_ack=True)
        assert method is not None and number_of(body, SIZE) == 7
    finally:
        connection.close()


@pytest.mark.parametrize("name", PARAMS)
def test_damaged_folder_starts_serves_and_keeps_what_is_intact(
    name: str, template: Path, tmp_path: Path
) -> None:
    case = CASES[name]
    folder = tmp_path / "data"
    shutil.copytree(template, folder)
    case.damage(folder / case.file)
    broker = BrokerProcess(folder)
    try:
        broker.start()  # raises if it does not come up
        serves_new_clients(broker.url)
        lost: list[str] = []
        for queue in IN_DB:
            written = IN_DB[queue] | IN_WAL.get(queue, set())
            numbers = recovered(broker.url, queue)
            if numbers is None:
                assert not case.keeps_db, f"{name}: queue {queue} lost"
                lost.append(f"queue {queue}")
                continue
            assert numbers == sorted(set(numbers)), f"{name}: {queue} out of order"
            assert set(numbers) <= written, f"{name}: {queue} has messages never written"
            if case.keeps_db:
                missing = IN_DB[queue] - set(numbers)
                assert not missing, f"{name}: {queue} lost {sorted(missing)} of the db file"
            if case.keeps_wal:
                assert set(numbers) == written, f"{name}: {queue} lost messages"
            if set(numbers) != written:
                lost.append(f"{len(written - set(numbers))} messages of {queue}")
        warnings = broker.lines_with("WARNING")
        if lost:
            assert warnings, f"{name}: lost {', '.join(lost)} without a WARNING"
        if lost and case.file == DB:
            # (an empty database file has nothing to keep: then its orphaned WAL is kept)
            kept = [p.name for p in folder.iterdir() if ".damaged-" in p.name]
            assert kept, f"{name}: the damaged files were not kept aside"
        if case.keeps_wal:
            assert not warnings, f"{name}: warned though nothing was lost: {warnings}"
        broker.stop()
        broker.check_no_errors()
    finally:
        broker.kill()
        print(f"{name}:\n{broker.run_log()}")


def _text(line: str) -> str:
    """A log line without its time stamp."""
    return line.split(" ", 2)[-1]


@pytest.mark.parametrize("name", ["wal-deleted", "db-zeroed", "db-truncated-half"])
def test_after_recovery_the_folder_keeps_new_messages(
    name: str, template: Path, tmp_path: Path
) -> None:
    """The folder a recovery left is sound: a message confirmed then survives a crash."""
    case = CASES[name]
    folder = tmp_path / "data"
    shutil.copytree(template, folder)
    case.damage(folder / case.file)
    broker = BrokerProcess(folder)
    try:
        broker.start()
        publish(broker.url, "new", range(5000, 5050))
        first = {_text(line) for line in broker.lines_with("WARNING")}
        broker.kill()
        broker.start()
        assert recovered(broker.url, "new") == list(range(5000, 5050))
        again = {_text(line) for line in broker.lines_with("WARNING", broker.run_start)}
        assert again <= first, f"new damage reported after a plain crash: {again - first}"
        broker.stop()
        broker.check_no_errors()
    finally:
        broker.kill()
