"""Stored files no job uses (an interrupted submission's) are found and removed, never in use.

Races run on real connections: `db gc` deleting a file at the moment a submission or a worker
reuses it by its hash must leave every job pointing at a whole stored file.
"""

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from batchdesk.domain.file_selection import select_files
from batchdesk.errors import Cancelled
from batchdesk.storage import batch_queries, blob_store, job_queue
from batchdesk.storage.blob_store import GRACE_SECONDS
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import StoredOutput
from batchdesk.storage.pool import only_row
from batchdesk.storage.submission import SubmissionRequest, submit
from tests.factories import make_batch, make_png


def request_for(paths: Sequence[Path]) -> SubmissionRequest:
    selection = select_files(paths)
    return SubmissionRequest(
        files=selection.files, source_paths=tuple(paths), created_by="tester@test"
    )


def interrupted_submission(database: Database, paths: Sequence[Path]) -> None:
    """A submission cancelled after its files were stored, before its batch was created."""
    uploaded: list[bool] = []

    def progress(_phase: str, done: int, total: int) -> None:
        if done == total:
            uploaded.append(True)

    with pytest.raises(Cancelled):
        submit(database, request_for(paths), progress, cancelled=lambda: bool(uploaded))


def sha256_of(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def age(conninfo: str, paths: Sequence[Path], seconds: float = GRACE_SECONDS + 60) -> None:
    """Make the stored copies of `paths` look uploaded `seconds` ago."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "UPDATE blobs SET created_at = now() - make_interval(secs => %s) "
            "WHERE sha256 = ANY(%s)",
            (seconds, [sha256_of(p) for p in paths]),
        )


def stored(database: Database) -> set[bytes]:
    with database.connect() as connection:
        return {bytes(r[0]) for r in connection.execute("SELECT sha256 FROM blobs")}


def stored_bytes(database: Database, sha256: bytes) -> bytes:
    with database.connect() as connection:
        return b"".join(blob_store.read_chunks(connection, sha256))


def wait_for_lock_waiter(conninfo: str, timeout: float = 60) -> None:
    """Wait until some other connection to this database waits on a lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as monitor:
        while time.monotonic() < deadline:
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("nothing ever waited on a lock")


class InThread:
    """Run `action` on a thread; `result()` waits for it and re-raises what it raised."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self._outcome: list[Any] = []
        self._failure: list[BaseException] = []

        def run() -> None:
            try:
                self._outcome.append(action())
            except BaseException as exc:
                self._failure.append(exc)

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def result(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running"
        if self._failure:
            raise self._failure[0]
        return self._outcome[0]


def test_files_of_an_interrupted_submission_are_reported_then_removed_once_an_hour_old(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    (kept,) = make_batch(database, tmp_path / "kept", count=2).batches
    old = [make_png(tmp_path / "old" / f"PL_DXB19{i}_x.png", seed=50 + i) for i in range(2)]
    fresh = make_png(tmp_path / "fresh" / "PL_DXB199_y.png", seed=99)
    interrupted_submission(database, old)
    interrupted_submission(database, [fresh])
    age(database_conninfo, old)
    before = stored(database)
    old_bytes = sum(p.stat().st_size for p in old)

    with database.connect() as connection:
        report = blob_store.unreferenced(connection)
    assert (report.files, report.bytes) == (3, old_bytes + fresh.stat().st_size)
    assert (report.recent_files, report.recent_bytes) == (1, fresh.stat().st_size)

    dry = blob_store.collect_garbage(database, delete=False)
    assert (dry.files, dry.bytes) == (2, old_bytes)
    assert stored(database) == before

    done = blob_store.collect_garbage(database, delete=True)
    assert (done.files, done.bytes) == (2, old_bytes)
    assert stored(database) == before - {sha256_of(p) for p in old}
    assert sha256_of(fresh) in stored(database)  # may be a submission still uploading
    with database.connect() as connection:
        jobs = batch_queries.list_jobs(connection, kept.id)
        assert only_row(connection.execute("SELECT count(*) FROM blob_chunks"))[0] == 3
    for job in jobs:
        path = tmp_path / "kept" / job.file_name
        assert stored_bytes(database, bytes.fromhex(job.input_sha256)) == path.read_bytes()
    assert blob_store.collect_garbage(database, delete=True).files == 0


def test_a_submission_reusing_a_file_that_gc_is_deleting_stores_it_again(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    path = make_png(tmp_path / "PL_DXB191_again.png", seed=7)
    interrupted_submission(database, [path])
    age(database_conninfo, [path])

    with database.begin() as connection:
        # gc has deleted the file and not committed yet; the submission finds it stored,
        # skips uploading it, and then waits for gc when it takes hold of its files.
        assert blob_store.delete_unreferenced_older_than(connection, GRACE_SECONDS).files == 1
        submission = InThread(lambda: submit(database, request_for([path])))
        wait_for_lock_waiter(database_conninfo)
    (batch,) = submission.result().batches

    with database.connect() as connection:
        (job,) = batch_queries.list_jobs(connection, batch.id)
    assert stored_bytes(database, bytes.fromhex(job.input_sha256)) == path.read_bytes()


def test_gc_passes_over_a_file_a_submission_is_taking_and_does_not_wait_for_it(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    path = make_png(tmp_path / "PL_DXB191_taken.png", seed=8)
    interrupted_submission(database, [path])
    age(database_conninfo, [path])
    (other,) = make_batch(database, tmp_path / "other", count=1).batches
    with psycopg.connect(database_conninfo) as taking:
        # A submission's transaction that has inserted a job using the file, not committed.
        taking.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, "
            "pipeline) VALUES (%s, 1, 'PL_DXB191_taken.png', %s, %s, 'original')",
            (other.id, sha256_of(path), path.stat().st_size),
        )

        collected = InThread(lambda: blob_store.collect_garbage(database, delete=True))

        assert collected.result().files == 0
        taking.commit()
    assert stored_bytes(database, sha256_of(path)) == path.read_bytes()


def test_a_worker_storing_an_output_that_gc_is_deleting_stores_it_again(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    output = make_png(tmp_path / "out" / "PL_DXB191_result.png", seed=21)
    interrupted_submission(database, [output])  # the same bytes, left by a submission
    age(database_conninfo, [output])
    make_batch(database, tmp_path / "in", count=1)
    job = job_queue.claim(database, "test-worker")
    assert job is not None
    digest = blob_store.hash_file(output)
    result = [(StoredOutput("PL_DXB191_result.png", digest, "image/png", 8, 8), output)]

    with database.begin() as connection:
        assert blob_store.delete_unreferenced_older_than(connection, GRACE_SECONDS).files == 1
        completion = InThread(lambda: job_queue.complete(database, job, result))
        wait_for_lock_waiter(database_conninfo)

    assert completion.result() is True
    assert stored_bytes(database, digest.sha256) == output.read_bytes()


def test_a_worker_storing_an_output_that_a_batch_deletion_is_removing_stores_it_again(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    (doomed,) = make_batch(database, tmp_path / "doomed", count=1).batches
    doomed_input = tmp_path / "doomed" / "PL_DXB191_view0.png"
    make_batch(database, tmp_path / "busy", count=1, prefix="QX_ABC", seed=5)
    with database.connect() as connection:
        busy_job_id = only_row(
            connection.execute("SELECT id FROM jobs WHERE batch_id <> %s", (doomed.id,))
        )[0]
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE batch_id = %s", (doomed.id,))
    job = job_queue.claim(database, "test-worker")
    assert job is not None
    assert job.id == busy_job_id
    digest = blob_store.hash_file(doomed_input)  # its output is the doomed batch's input
    result = [(StoredOutput("same.png", digest, "image/png", 8, 8), doomed_input)]

    with database.begin() as connection:
        batch_queries.delete_batch(connection, doomed.id)  # holds its jobs; deletes the file
        completion = InThread(lambda: job_queue.complete(database, job, result))
        wait_for_lock_waiter(database_conninfo)

    assert completion.result() is True
    assert stored_bytes(database, digest.sha256) == doomed_input.read_bytes()
