"""File bytes in a folder store: the same submissions, jobs and exports, bytes kept on the share."""

import hashlib
import random
import signal
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from batchdesk.errors import KnownError
from batchdesk.export.zip_export import export_zip
from batchdesk.storage import file_bytes, folder_store, migrations_runner
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.folder_store import DamagedFile, StoreUnavailable
from batchdesk.storage.pool import only_row
from batchdesk.storage.share_paths import SharePaths
from tests.database_fixtures import TestServer
from tests.factories import make_batch, make_png
from tests.filesystems import mount_tmpfs
from tests.integration.jobs_support import run_all_jobs, submit_paths


def use_store(database: Database, folder: Path | str) -> None:
    with database.begin() as connection:
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(folder)))


def use_database(database: Database, folder: Path) -> None:
    with database.begin() as connection:
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.DATABASE, str(folder)))


def locations(database: Database) -> dict[str, int]:
    with database.connect() as connection:
        rows = connection.execute("SELECT location, count(*) FROM blobs GROUP BY 1").fetchall()
    return {row[0]: int(row[1]) for row in rows}


def count(database: Database, table: str) -> int:
    with database.connect() as connection:
        return int(only_row(connection.execute(f"SELECT count(*) FROM {table}"))[0])


def stored_files(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file())


def zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {
            name.split("/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if not name.endswith(".csv")
        }


def test_with_a_folder_store_bytes_go_to_the_folder_and_only_facts_to_the_database(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    inputs = [make_png(tmp_path / "in" / f"PL_DXB19{i}.png", (40, 30), seed=i) for i in range(3)]

    name = submit_paths(database, inputs)
    run_all_jobs(database)
    exported = export_zip(database, name, tmp_path / "out.zip", include_inputs=True)

    assert locations(database) == {"store": 3}  # the "original" pipeline outputs its input
    assert count(database, "blob_chunks") == 0
    assert {p.read_bytes() for p in stored_files(store)} == {p.read_bytes() for p in inputs}
    assert exported.files == 6
    assert sorted(zip_contents(tmp_path / "out.zip").values()) == sorted(
        [p.read_bytes() for p in inputs] * 2
    )


def test_files_stay_readable_from_either_place_whatever_the_setting(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    kept_in_database = make_batch(database, tmp_path / "a", count=2, prefix="AA_AAA")
    use_store(database, store)
    kept_in_store = make_batch(database, tmp_path / "b", count=2, prefix="BB_BBB", seed=9)
    use_database(database, store)
    later = make_batch(database, tmp_path / "c", count=1, prefix="CC_CCC", seed=20)

    assert locations(database) == {"database": 3, "store": 2}
    for result, folder in ((kept_in_database, "a"), (kept_in_store, "b"), (later, "c")):
        batch = result.batches[0].base_directory_name
        target = tmp_path / f"{batch}.zip"
        export_zip(database, batch, target, include_inputs=True)
        expected = sorted(p.read_bytes() for p in (tmp_path / folder).iterdir())
        assert sorted(zip_contents(target).values()) == expected


def test_a_file_already_in_the_database_is_not_copied_to_the_store(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    make_batch(database, tmp_path / "a", count=2)
    use_store(database, store)

    make_batch(database, tmp_path / "a", count=2)  # the same files again

    assert locations(database) == {"database": 2}
    assert stored_files(store) == []


def test_every_file_written_to_the_store_has_the_crc_its_reads_check(
    database: Database, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    inputs = [make_png(tmp_path / "in" / f"PL_DXB19{i}.png", (64, 48), seed=i) for i in range(2)]

    submit_paths(database, inputs, pipeline="thumbnails")
    run_all_jobs(database)

    with database.connect() as connection:
        rows = connection.execute("SELECT sha256, crc32 FROM blobs").fetchall()
    submitted = {hashlib.sha256(p.read_bytes()).digest() for p in inputs}
    assert {bytes(sha256) for sha256, _ in rows} > submitted  # thumbnails are new files
    for sha256, crc32 in rows:
        kept = store / folder_store.relative_path(bytes(sha256))
        assert crc32 == zlib.crc32(kept.read_bytes()), kept


@pytest.mark.parametrize("written_before_crcs", [False, True])
def test_a_damaged_file_in_the_store_fails_its_job_and_its_export_naming_the_file(
    database: Database, tmp_path: Path, written_before_crcs: bool
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    source = make_png(tmp_path / "in" / "PL_DXB191.png", (32, 32), seed=3)
    name = submit_paths(database, [source])
    [stored] = stored_files(store)
    if written_before_crcs:  # as rows from before 0014 are: checked by their sha256
        with database.begin() as connection:
            connection.execute("UPDATE blobs SET crc32 = NULL")
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")

    run_all_jobs(database)

    with database.connect() as connection:
        status, error = only_row(connection.execute("SELECT status, last_error FROM jobs"))
    assert status == "failed"
    assert str(stored) in error
    assert "damaged" in error
    with pytest.raises(DamagedFile, match=str(stored)):
        export_zip(database, name, tmp_path / "out.zip", include_inputs=True)
    assert not (tmp_path / "out.zip").exists()


def test_a_share_that_is_not_mounted_stops_the_submission_with_a_sentence(
    database: Database, tmp_path: Path
) -> None:
    use_store(database, tmp_path / "not-mounted")
    source = make_png(tmp_path / "in" / "PL_DXB191.png")

    with pytest.raises(StoreUnavailable, match="is the share mounted on this machine"):
        submit_paths(database, [source])
    assert count(database, "batches") == 0
    assert count(database, "blobs") == 0


@pytest.fixture
def small_share(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "small", "size=256k,mode=0777")


@pytest.fixture
def read_only_share(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "read-only", "ro,size=64k")


def test_a_full_share_stops_the_submission_and_leaves_no_partial_file(
    database: Database, tmp_path: Path, small_share: Path
) -> None:
    use_store(database, small_share)
    sources = [make_png(tmp_path / "in" / f"PL_DXB19{i}.png", (200, 200)) for i in range(1)]
    sources.append(tmp_path / "in" / "PL_DXB199.png")
    sources[-1].write_bytes(sources[0].read_bytes() + b"\x00" * (400 << 10))  # bigger than 256k

    with pytest.raises(StoreUnavailable, match="the share is full"):
        submit_paths(database, sources)
    assert count(database, "batches") == 0
    assert count(database, "blobs") == 0  # rows are committed only after their files
    names = [p.name for p in stored_files(small_share)]
    assert not [n for n in names if n.startswith(folder_store.TEMPORARY_PREFIX)]


def test_a_read_only_share_stops_the_submission_with_a_sentence(
    database: Database, tmp_path: Path, read_only_share: Path
) -> None:
    use_store(database, read_only_share)
    source = make_png(tmp_path / "in" / "PL_DXB191.png")

    with pytest.raises(StoreUnavailable, match="read-only"):
        submit_paths(database, [source])
    assert count(database, "batches") == 0


def test_a_machine_that_mounts_the_share_elsewhere_reads_it_through_its_mapping(
    database: Database, pg_server: TestServer, database_name: str, tmp_path: Path
) -> None:
    share = tmp_path / "media-share"
    (share / "batchdesk").mkdir(parents=True)
    use_store(database, "/mnt/renders/batchdesk")  # the path the studio's nodes use
    database.share_paths = SharePaths.parse(f"/mnt/renders={share}")
    sources = [make_png(tmp_path / "in" / f"PL_DXB19{i}.png", seed=i) for i in range(2)]
    name = submit_paths(database, sources)

    other = pg_server.open(database_name)  # a second workstation, mounting it elsewhere again
    elsewhere = tmp_path / "mnt-r"
    elsewhere.symlink_to(share)
    other.share_paths = SharePaths.parse(f"/mnt/renders={elsewhere}")
    try:
        export_zip(other, name, tmp_path / "out.zip", include_inputs=True)
    finally:
        other.close()
    assert sorted(zip_contents(tmp_path / "out.zip").values()) == sorted(
        p.read_bytes() for p in sources
    )

    unmapped = pg_server.open(database_name)  # and one whose mapping is missing
    try:
        with pytest.raises(KnownError, match="/mnt/renders/batchdesk is not there"):
            export_zip(unmapped, name, tmp_path / "none.zip", include_inputs=True)
    finally:
        unmapped.close()


def test_upgrade_to_0012_keeps_every_earlier_file_in_the_database(
    pg_server: TestServer, tmp_path: Path
) -> None:
    from alembic import command

    name = pg_server.create_database()
    try:
        database = pg_server.open(name)
        try:
            make_batch(database, tmp_path / "a", count=2)
            config = migrations_runner._config()
            with migrations_runner.alembic_connection(database, begin=True) as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "0011")
            migrations_runner.upgrade(database)
            with psycopg.connect(pg_server.conninfo(name)) as conn:
                rows = conn.execute("SELECT location, count(*) FROM blobs GROUP BY 1").fetchall()
        finally:
            database.close()
    finally:
        pg_server.drop_database(name)
    assert rows == [("database", 2)]


# A submission into a folder store, in a process of its own, that stops in the middle of naming
# its second group of files: the first group's rows are committed, the second group's files are
# partly named and partly still under temporary names, and none of their rows exist yet.
SUBMITTER = """
import sys, threading, time
from pathlib import Path
from batchdesk.domain.file_selection import select_files
from batchdesk.storage import file_bytes, folder_store
from batchdesk.storage.database import Database
from batchdesk.storage.submission import SubmissionRequest, submit

conninfo, group_bytes, paths = sys.argv[1], int(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
file_bytes.STORE_GROUP_BYTES = group_bytes
real_name = folder_store.Writes._name
lock, calls = threading.Lock(), []

def name_then_stop(self, copied):
    with lock:
        calls.append(copied)
        call = len(calls)
    if call == 6:  # the second group's last file stays under its temporary name
        time.sleep(3600)
    result = real_name(self, copied)
    if call == 5:
        print("naming the second group", flush=True)
        time.sleep(3600)
    return result

folder_store.Writes._name = name_then_stop
selection = select_files(paths)
submit(Database(conninfo, "crash test"), SubmissionRequest(files=selection.files, created_by="t@t"))
"""


def noise_png(path: Path, seed: int) -> Path:
    """A PNG of random pixels: incompressible, so every such file has nearly the same size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = random.Random(seed).randbytes(48 * 48 * 3)
    Image.frombytes("RGB", (48, 48), pixels).save(path, format="PNG")
    return path


def test_a_submission_killed_while_naming_files_leaves_no_row_without_its_file(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    inputs = [noise_png(tmp_path / "in" / f"PL_DXB19{i}.png", seed=i) for i in range(9)]
    sizes = [p.stat().st_size for p in inputs]
    group_bytes = 2 * max(sizes) + 1  # three files to a group
    assert group_bytes <= 3 * min(sizes)

    with subprocess.Popen(
        [sys.executable, "-c", SUBMITTER, database_conninfo, str(group_bytes), *map(str, inputs)],
        stdout=subprocess.PIPE,
        text=True,
    ) as submitter:
        assert submitter.stdout is not None
        assert submitter.stdout.readline() == "naming the second group\n"
        submitter.send_signal(signal.SIGKILL)

    with database.connect() as connection:
        rows = connection.execute("SELECT sha256, size FROM blobs WHERE location = 'store'")
        committed = [(bytes(sha), int(size)) for sha, size in rows.fetchall()]
    assert len(committed) == 3  # the first group's: the second group's rows never committed
    for sha, size in committed:
        assert folder_store.verify(store, sha, size) is None
    named = [p for p in stored_files(store) if not p.name.startswith(folder_store.TEMPORARY_PREFIX)]
    assert len(named) >= 4
    for path in named:  # a name never holds other bytes than its own, even a crashed writer's
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    leftovers = [p for p in stored_files(store) if p.name.startswith(folder_store.TEMPORARY_PREFIX)]
    assert leftovers
    assert all(p.parent == store for p in leftovers)
    assert count(database, "batches") == 0

    name = submit_paths(database, inputs)  # the same files again, after the crash

    assert locations(database) == {"store": 9}
    exported = export_zip(database, name, tmp_path / "out.zip", include_inputs=True)
    assert exported.files == 9
