"""Moving stored files between the database and the file store, one crash-safe file at a time."""

import hashlib
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc

from batchdesk.export.zip_export import export_zip
from batchdesk.storage import (
    file_bytes,
    file_moves,
    folder_store,
    migrations_runner,
    store_gc,
    store_identity,
)
from batchdesk.storage.database import Database
from batchdesk.storage.file_moves import MoveRefused, MoveTally
from batchdesk.storage.folder_store import StoreUnavailable
from tests.factories import make_batch, make_png, make_pngs
from tests.filesystems import mount_tmpfs
from tests.integration.jobs_support import submit_paths
from tests.integration.test_file_store import (
    count,
    locations,
    stored_files,
    use_database,
    use_store,
    zip_contents,
)


def sha256_of(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def export_inputs(database: Database, name: str, target: Path) -> dict[str, bytes]:
    export_zip(database, name, target, include_inputs=True)
    return zip_contents(target)


def big_png(path: Path, chunks: int, seed: int = 0) -> Path:
    """A PNG of a little over `chunks` MiB: its bytes span that many chunks and one more."""
    make_png(path, (8, 8), seed=seed)
    path.write_bytes(path.read_bytes() + os.urandom(chunks << 20))  # after IEND: still a PNG
    return path


def test_files_move_into_the_store_and_back_with_the_same_bytes(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    name = make_batch(database, tmp_path / "in", count=3).batches[0].base_directory_name
    before = export_inputs(database, name, tmp_path / "before.zip")
    use_store(database, store)

    there = file_moves.move_files(database, file_bytes.STORE)

    assert (there.moved_files, there.already_there, there.problems) == (3, 0, [])
    assert there.moved_bytes == sum(p.stat().st_size for p in (tmp_path / "in").iterdir())
    assert locations(database) == {"store": 3}
    assert count(database, "blob_chunks") == 0
    assert export_inputs(database, name, tmp_path / "in-store.zip") == before
    with database.connect() as connection:
        crcs = connection.execute("SELECT sha256, crc32 FROM blobs").fetchall()
    for sha256, crc32 in crcs:  # what later reads check
        assert crc32 == zlib.crc32((store / folder_store.relative_path(bytes(sha256))).read_bytes())

    use_database(database, store)
    back = file_moves.move_files(database, file_bytes.DATABASE)

    assert (back.moved_files, back.already_there, back.problems) == (3, 0, [])
    assert locations(database) == {"database": 3}
    assert stored_files(store) == []
    assert export_inputs(database, name, tmp_path / "back.zip") == before
    again = file_moves.move_files(database, file_bytes.DATABASE)
    assert (again.moved_files, again.already_there) == (0, 3)


def test_a_reader_halfway_through_a_file_reads_on_after_it_moves_into_the_store(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    source = big_png(tmp_path / "in" / "PL_DXB191_v0.png", chunks=2)
    submit_paths(database, [source])
    use_store(database, store)
    sha256 = sha256_of(source)

    with database.connect() as reader:
        # A chunk per query, as a preview reads: the move lands between two of them.
        chunks = file_bytes.chunks(reader, sha256, database.share_paths, streamed=False)
        first = next(chunks)
        file_moves.move_files(database, file_bytes.STORE)
        rest = b"".join(chunks)

    assert locations(database) == {"store": 1}
    assert first + rest == source.read_bytes()


def test_a_copy_already_in_the_store_is_used_when_whole_and_replaced_when_damaged(
    database: Database, tmp_path: Path
) -> None:
    # What a move stopped between its copy and its commit leaves: the row in the database,
    # a copy in the store (whole, or for all anyone knows, not).
    store = tmp_path / "store"
    store.mkdir()
    result = make_batch(database, tmp_path / "in", count=2)
    name = result.batches[0].base_directory_name
    before = export_inputs(database, name, tmp_path / "before.zip")
    whole, damaged = sorted((tmp_path / "in").iterdir())
    for path in (whole, damaged):
        target = store / folder_store.relative_path(sha256_of(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    left = store / folder_store.relative_path(sha256_of(damaged))
    left.write_bytes(b"\x00" * left.stat().st_size)  # the right size, the wrong bytes
    use_store(database, store)

    tally = file_moves.move_files(database, file_bytes.STORE)

    assert (tally.moved_files, tally.problems) == (2, [])
    assert left.read_bytes() == damaged.read_bytes()
    with database.connect() as connection:
        assert list(file_bytes.damaged_store_files(connection, database.share_paths)) == []
    assert export_inputs(database, name, tmp_path / "after.zip") == before


def test_a_damaged_file_in_the_store_stays_there_and_is_named(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    make_batch(database, tmp_path / "in", count=2)
    damaged = stored_files(store)[0]
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x00")
    use_database(database, store)

    tally = file_moves.move_files(database, file_bytes.DATABASE)

    assert tally.moved_files == 1
    assert len(tally.problems) == 1
    assert str(damaged) in tally.problems[0]
    assert "damaged" in tally.problems[0]
    assert locations(database) == {"database": 1, "store": 1}
    assert stored_files(store) == [damaged]
    with database.connect() as connection:  # the one moved has all its chunks, nothing more
        chunks = connection.execute("SELECT count(*) FROM blob_chunks").fetchone()
    assert chunks == (1,)


def test_moving_to_the_store_without_one_set_is_refused(database: Database, tmp_path: Path) -> None:
    make_batch(database, tmp_path / "in", count=1)

    with pytest.raises(MoveRefused, match="No file store is set"):
        file_moves.move_files(database, file_bytes.STORE)
    use_store(database, tmp_path / "store-once")
    use_database(database, tmp_path / "store-once")
    with pytest.raises(MoveRefused, match=r"file-store .*store-once` before moving files"):
        file_moves.move_files(database, file_bytes.STORE)
    assert locations(database) == {"database": 1}


def test_one_mover_at_a_time(database: Database, database_conninfo: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    make_batch(database, tmp_path / "in", count=1)
    with psycopg.connect(database_conninfo, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (file_moves.MOVE_LOCK_KEY,))

        with pytest.raises(MoveRefused, match="Another `batchdesk db move-files` is running"):
            file_moves.move_files(database, file_bytes.DATABASE)


@pytest.fixture
def small_share(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "small", "size=512k,mode=0777")


def test_a_share_filling_up_during_the_move_stops_it_with_every_file_whole(
    database: Database, tmp_path: Path, small_share: Path
) -> None:
    sources = [make_png(tmp_path / "in" / f"PL_DXB19{i}_v0.png", seed=i) for i in range(3)]
    for path in sources:  # 100 KiB each, 300 KiB in all: room enough when the move begins
        path.write_bytes(path.read_bytes() + os.urandom(100 << 10))
    name = submit_paths(database, sources)
    before = export_inputs(database, name, tmp_path / "before.zip")
    use_store(database, small_share)
    filler = small_share / "someone-else.bin"

    def fill_after_the_first(tally: MoveTally) -> None:
        if tally.done_files == 1 and not filler.exists():  # another writer takes the rest
            free = os.statvfs(small_share).f_bavail * os.statvfs(small_share).f_frsize
            filler.write_bytes(b"\x00" * (free - (20 << 10)))

    with pytest.raises(StoreUnavailable, match="the share is full"):
        file_moves.FileMover(database, file_bytes.STORE, fill_after_the_first).run()

    assert locations(database) == {"store": 1, "database": 2}
    kept = [p for p in stored_files(small_share) if p != filler]
    assert [p.name for p in kept if p.name.startswith(folder_store.TEMPORARY_PREFIX)] == []
    assert export_inputs(database, name, tmp_path / "after.zip") == before


def wait_for_a_lock_waiter(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as monitor:
        for _ in range(2000):
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("nobody waited for the lock")


def test_a_copy_db_gc_removes_before_its_row_names_it_is_made_again(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with database.begin() as connection:
        store_identity.claim(connection, store)
    [source] = make_pngs(tmp_path / "in", ["PL_DXB191_v0.png"])
    submit_paths(database, [source])
    use_store(database, store)
    # A whole copy that a move killed long ago left: no row names it, so `db gc` may take it.
    left = store / folder_store.relative_path(sha256_of(source))
    left.parent.mkdir(parents=True)
    left.write_bytes(source.read_bytes())
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    tallies: list[MoveTally] = []

    with psycopg.connect(database_conninfo) as submission:
        # A submission taking hold of the file holds the move up after it checked the copy.
        submission.execute(
            "SELECT 1 FROM blobs WHERE sha256 = %s FOR KEY SHARE", (sha256_of(source),)
        )
        mover = threading.Thread(
            target=lambda: tallies.append(file_moves.move_files(database, file_bytes.STORE))
        )
        mover.start()
        wait_for_a_lock_waiter(database_conninfo)
        gone = store_gc.collect(database, store, delete=True)
        submission.rollback()
    mover.join(60)

    assert gone.files == 1  # the copy the move had checked
    assert [(t.moved_files, t.problems) for t in tallies] == [(1, [])]
    assert left.read_bytes() == source.read_bytes()
    with database.connect() as connection:
        assert list(file_bytes.damaged_store_files(connection, database.share_paths)) == []


def test_going_back_below_0012_asks_for_the_move_that_then_lets_it(
    database: Database, tmp_path: Path
) -> None:
    from alembic import command

    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    make_batch(database, tmp_path / "in", count=2)

    def downgrade() -> None:
        config = migrations_runner._config()
        with migrations_runner.alembic_connection(database, begin=True) as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0011")

    with pytest.raises(sqlalchemy.exc.DBAPIError) as refused:
        downgrade()
    assert (
        "bring them into the database first (batchdesk db file-store database, then batchdesk "
        "db move-files --to database)"
    ) in str(refused.value)

    use_database(database, store)
    file_moves.move_files(database, file_bytes.DATABASE)
    downgrade()
    assert migrations_runner.schema_status(database).current == "0011"


def test_readers_get_every_byte_while_files_move_back_and_forth(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    sources = [make_png(tmp_path / "in" / f"PL_DXB{100 + i}_v0.png", seed=i) for i in range(30)]
    submit_paths(database, sources)
    expected = {sha256_of(p): p.read_bytes() for p in sources}
    stop = threading.Event()
    wrong: list[str] = []
    reads = [0]

    def read_all_the_time() -> None:
        # As workers (chunk views), exports (streamed) and previews (a chunk per query) read.
        while not stop.is_set():
            for sha256, content in expected.items():
                with database.connect() as connection:
                    views = file_bytes.chunk_views(connection, sha256, database.share_paths)
                    got = [
                        b"".join(bytes(c) for c in views),
                        b"".join(file_bytes.chunks(connection, sha256, database.share_paths)),
                        b"".join(
                            file_bytes.chunks(
                                connection, sha256, database.share_paths, streamed=False
                            )
                        ),
                    ]
                reads[0] += 1
                wrong.extend(sha256.hex()[:12] for g in got if g != content)

    readers = [threading.Thread(target=read_all_the_time) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(3):
            use_store(database, store)
            assert file_moves.move_files(database, file_bytes.STORE).moved_files == 30
            use_database(database, store)
            assert file_moves.move_files(database, file_bytes.DATABASE).moved_files == 30
    finally:
        stop.set()
        for reader in readers:
            reader.join(60)

    assert reads[0] > 30
    assert wrong == []


def test_a_share_that_is_not_mounted_is_refused_both_ways_with_nothing_moved(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    make_batch(database, tmp_path / "a", count=1)
    use_database(database, store)
    make_batch(database, tmp_path / "b", count=1, prefix="BB_BBB", seed=5)
    use_store(database, store)
    store.rename(tmp_path / "unmounted")

    for to in (file_bytes.STORE, file_bytes.DATABASE):
        with pytest.raises(StoreUnavailable, match="is the share mounted on this machine"):
            file_moves.move_files(database, to)
    assert locations(database) == {"store": 1, "database": 1}
