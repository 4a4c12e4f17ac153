"""`db gc` takes back the file store's space: files no row names, never one in use or on its way.

The races run on real connections against a real folder: an upload that finds a file already
in the store (so does not write it) and commits its row while gc is removing that very file.
"""

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from batchdesk.storage import (
    batch_queries,
    blob_store,
    file_bytes,
    file_moves,
    folder_store,
    job_queue,
    store_gc,
    store_identity,
)
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.job_queue import StoredOutput
from batchdesk.storage.pool import only_row
from tests.factories import make_batch, make_png
from tests.filesystems import mount_tmpfs
from tests.integration.jobs_support import submit_paths
from tests.integration.test_blob_gc import InThread, interrupted_submission, wait_for_lock_waiter

HOUR_AND_A_BIT = store_gc.GRACE_SECONDS + 60


def use_store(database: Database, folder: Path) -> None:
    with database.begin() as connection:
        store_identity.claim(connection, folder)  # as `batchdesk db file-store FOLDER`
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(folder)))


def in_store(store: Path) -> set[Path]:
    """The files the store keeps (not its marker)."""
    return {p for p in store.rglob("*") if p.is_file()} - {store / store_identity.MARKER_NAME}


def store_path(store: Path, source: Path) -> Path:
    return store / folder_store.relative_path(hashlib.sha256(source.read_bytes()).digest())


def make_old(*paths: Path) -> None:
    """Make files look written over an hour ago."""
    then = time.time() - HOUR_AND_A_BIT
    for path in paths:
        os.utime(path, (then, then))


def age_rows(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("UPDATE blobs SET created_at = created_at - interval '61 minutes'")


def problems(database: Database) -> list[str]:
    with database.connect() as connection:
        return list(file_bytes.damaged_store_files(connection, database.share_paths))


def deleted_batch_file(database: Database, store: Path, folder: Path, seed: int) -> Path:
    """Submit one file in a batch of its own, delete the batch: its file stays in the store."""
    result = make_batch(database, folder, count=1, prefix="ZZ_ZZZ", seed=seed)
    with database.begin() as connection:
        batch_queries.delete_batch(connection, result.batches[0].id)
    [source] = folder.iterdir()
    return source


def test_gc_removes_files_no_row_names_once_old_and_leaves_every_used_one(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    make_batch(database, tmp_path / "kept", count=2)
    gone = deleted_batch_file(database, store, tmp_path / "gone", seed=50)
    fresh = deleted_batch_file(database, store, tmp_path / "fresh", seed=60)
    interrupted = make_png(tmp_path / "cut" / "PL_DXB199_v.png", (16, 16), seed=70)
    interrupted_submission(database, [interrupted])  # its row stays, used by no job
    used = {store_path(store, p) for p in (tmp_path / "kept").iterdir()}
    half_written = store_path(store, gone).parent / f"{folder_store.TEMPORARY_PREFIX}killed"
    half_written.write_bytes(b"the start of a file")
    probe = store / f"{folder_store.TEMPORARY_PREFIX}probe-killed"
    probe.write_bytes(b"batchdesk")
    make_old(*(in_store(store) - {store_path(store, fresh)}))
    age_rows(database_conninfo)
    garbage = {store_path(store, gone), store_path(store, interrupted), half_written, probe}
    before = in_store(store)
    assert before == used | garbage | {store_path(store, fresh)}

    dry = store_gc.collect(database, store, delete=False)

    assert in_store(store) == before
    assert (dry.files, dry.temporary_files, dry.recent_files) == (4, 2, 1)
    assert dry.bytes == sum(p.stat().st_size for p in garbage)

    blob_store.collect_garbage(database, delete=True)  # as `db gc --yes`: rows, then files
    done = store_gc.collect(database, store, delete=True)

    assert (done.files, done.bytes, done.busy_files) == (dry.files, dry.bytes, 0)
    assert in_store(store) == used | {store_path(store, fresh)}
    assert problems(database) == []
    make_old(store_path(store, fresh))
    again = store_gc.collect(database, store, delete=True)
    assert (again.files, again.recent_files) == (1, 0)
    assert in_store(store) == used


def test_gc_does_not_remove_a_file_an_upload_has_found_there_and_is_committing(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    source = deleted_batch_file(database, store, tmp_path / "in", seed=5)
    old_file = store_path(store, source)
    make_old(old_file)  # no row names it: gc may remove it... unless someone takes it up
    digest = blob_store.hash_file(source)

    with psycopg.connect(database_conninfo) as other:
        # Another workstation inserting the same row, not committed yet: the submission below
        # finds the file in the folder, holds it, and waits to insert its row.
        other.execute(
            "INSERT INTO blobs (sha256, size, location) VALUES (%s, %s, 'store')",
            (digest.sha256, digest.size),
        )
        submission = InThread(lambda: submit_paths(database, [source]))
        wait_for_lock_waiter(database_conninfo)

        during = store_gc.collect(database, store, delete=True)

        other.rollback()
    submission.result()

    assert problems(database) == []
    assert old_file.read_bytes() == source.read_bytes()
    assert (during.files, during.busy_files, during.busy_bytes) == (0, 1, digest.size)
    after = store_gc.collect(database, store, delete=True)
    assert (after.files, after.busy_files) == (0, 0)
    assert old_file.exists()


def test_an_upload_writes_again_a_file_gc_removed_after_the_upload_found_it_there(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    source = deleted_batch_file(database, store, tmp_path / "in", seed=6)
    old_file = store_path(store, source)
    digest = blob_store.hash_file(source)

    with psycopg.connect(database_conninfo) as collector:
        # What gc does to the file's folder: lock it, find no row names the file, remove it.
        collector.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", (store_gc.LOCK_CLASS, digest.sha256[0])
        )
        submission = InThread(lambda: submit_paths(database, [source]))
        wait_for_lock_waiter(database_conninfo)  # it found the file there, and waits to hold it
        old_file.unlink()
        collector.commit()
    name = submission.result()

    assert old_file.read_bytes() == source.read_bytes()
    assert problems(database) == []
    with database.connect() as connection:
        batch = batch_queries.find_batch(connection, name)
        assert only_row(connection.execute("SELECT count(*) FROM blobs"))[0] == 1
    assert batch.total_files == 1


def test_gc_deletes_nothing_from_a_folder_it_cannot_tell_is_this_databases_store(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    unused = store_path(store, deleted_batch_file(database, store, tmp_path / "in", seed=8))
    make_old(unused)
    marker = store / store_identity.MARKER_NAME
    ours = marker.read_text()
    marker.write_text("batchdesk file store 0c0ffee0-another-studio\n")

    elsewhere = store_gc.collect(database, store, delete=True)

    assert elsewhere.problem is not None
    assert "is another batchdesk database's file store" in elsewhere.problem
    assert elsewhere.problem.endswith("Nothing was deleted from it.")
    assert unused.exists()
    marker.write_text(ours)
    with psycopg.connect(database_conninfo) as conn:  # a store set up before markers
        [(store_id,)] = conn.execute(
            "DELETE FROM studio_settings WHERE key = 'file_store_id' RETURNING value"
        ).fetchall()

    unmarked = store_gc.collect(database, store, delete=True)

    assert unmarked.problem == (
        f"The file store {store} does not yet say which database it belongs to, so nothing was "
        "deleted from it: run `batchdesk db file-store` with its folder once to mark it."
    )
    assert unused.exists()
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "INSERT INTO studio_settings (key, value) VALUES ('file_store_id', %s)", (store_id,)
        )
    assert store_gc.collect(database, store, delete=True).files == 1
    assert not unused.exists()


def test_gc_does_not_remove_a_file_a_worker_has_found_there_for_its_output(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    use_store(database, store)
    source = deleted_batch_file(database, store, tmp_path / "old", seed=9)
    old_file = store_path(store, source)
    make_old(old_file)
    make_batch(database, tmp_path / "in", count=1)
    job = job_queue.claim(database, "test-worker")
    assert job is not None
    digest = blob_store.hash_file(source)
    output = [(StoredOutput("PL_DXB191_out.png", digest, "image/png", 8, 8), source)]

    with psycopg.connect(database_conninfo) as other:
        # The same row, not committed yet: the worker finds the file in the folder (its output
        # has the same bytes), holds it, and waits to insert its row.
        other.execute(
            "INSERT INTO blobs (sha256, size, location) VALUES (%s, %s, 'store')",
            (digest.sha256, digest.size),
        )
        completion = InThread(lambda: job_queue.complete(database, job, output))
        wait_for_lock_waiter(database_conninfo)

        during = store_gc.collect(database, store, delete=True)

        other.rollback()
    assert completion.result() is True

    assert problems(database) == []
    assert old_file.read_bytes() == source.read_bytes()
    assert (during.files, during.busy_files) == (0, 1)


@pytest.fixture
def share(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "share", "size=1m,mode=0777")


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def test_gc_on_a_share_mounted_read_only_says_it_cannot_delete_and_loses_nothing(
    database: Database, tmp_path: Path, share: Path
) -> None:
    use_store(database, share)
    unused = store_path(share, deleted_batch_file(database, share, tmp_path / "a", seed=11))
    make_batch(database, tmp_path / "kept", count=1, seed=12)
    make_old(*in_store(share))
    before = {p: p.read_bytes() for p in in_store(share)}
    remount(share, "ro")
    try:
        refused = store_gc.collect(database, share, delete=True)
    finally:
        remount(share, "rw")

    assert refused.problem == (
        f"Cannot delete from the file store {share}: Read-only file system ({share}); the rest "
        "of it was left as it is."
    )
    assert refused.files == 0
    assert {p: p.read_bytes() for p in in_store(share)} == before
    assert problems(database) == []
    assert store_gc.collect(database, share, delete=True).files == 1
    assert not unused.exists()


def test_copies_a_move_into_the_database_could_not_delete_go_at_the_next_gc(
    database: Database, tmp_path: Path, share: Path
) -> None:
    use_store(database, share)
    sources = [make_png(tmp_path / "in" / f"PL_DXB19{i}.png", (16, 16), seed=i) for i in range(2)]
    submit_paths(database, sources)
    remount(share, "ro")  # the move copies each file into the database, then cannot delete it
    try:
        moved = file_moves.move_files(database, file_bytes.DATABASE)
    finally:
        remount(share, "rw")
    assert (moved.moved_files, moved.old_copies_left) == (2, 2)
    make_old(*in_store(share))

    done = store_gc.collect(database, share, delete=True)

    assert done.files == 2
    assert in_store(share) == set()
    with database.connect() as connection:
        for source in sources:
            sha256 = hashlib.sha256(source.read_bytes()).digest()
            chunks = file_bytes.chunks(connection, sha256, database.share_paths, streamed=False)
            assert b"".join(chunks) == source.read_bytes()
