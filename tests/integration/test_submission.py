"""A submission is all or nothing, and each distinct file's bytes are stored once (promise 10)."""

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from PIL import Image

from batchdesk.domain.file_selection import select_files
from batchdesk.errors import Cancelled, FileProblem, InvalidRequest, NotFound
from batchdesk.storage import batch_queries, blob_store
from batchdesk.storage.batch_queries import JobRow
from batchdesk.storage.blob_store import CHUNK_SIZE, FileDigest
from batchdesk.storage.database import Database
from batchdesk.storage.pool import only_row
from batchdesk.storage.submission import SubmissionRequest, submit
from tests.factories import make_batch, make_png, make_pngs

DAY = date(2026, 11, 28)


def request_for(paths: Sequence[Path], **fields: Any) -> SubmissionRequest:
    """A submission of exactly these files, as an artist would drop them."""
    selection = select_files(paths)
    assert selection.rejected == ()
    return SubmissionRequest(
        files=selection.files, source_paths=tuple(paths), created_by="tester@test", **fields
    )


def make_noise_png(path: Path, side: int) -> Path:
    """Write a PNG of random noise: it does not compress, so it has about side² × 3 bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    noise.save(path, format="PNG", compress_level=1)
    return path


def sha256_of(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def count_rows(database: Database, table: str) -> int:
    with database.connect() as connection:
        return int(only_row(connection.execute(f"SELECT count(*) FROM {table}"))[0])


def stored_hashes(database: Database) -> set[bytes]:
    with database.connect() as connection:
        return {bytes(r[0]) for r in connection.execute("SELECT sha256 FROM blobs")}


def stored_bytes(database: Database, sha256: bytes) -> bytes:
    with database.connect() as connection:
        return b"".join(blob_store.read_chunks(connection, sha256))


def jobs_of(database: Database, batch_id: UUID) -> list[JobRow]:
    with database.connect() as connection:
        return batch_queries.list_jobs(connection, batch_id)


def test_three_files_become_one_batch_of_three_queued_jobs_in_the_given_order(
    database: Database, tmp_path: Path
) -> None:
    names = ["PL_DXB193_side.png", "PL_DXB191_front.png", "PL_DXB192_back.png"]
    paths = [make_png(tmp_path / n, size=(8 + 8 * i, 8), seed=i) for i, n in enumerate(names)]
    sizes = [p.stat().st_size for p in paths]

    result = submit(database, request_for(paths))

    (batch,) = result.batches
    assert result.warnings == ()
    assert (batch.total_files, batch.total_size, batch.status) == (3, sum(sizes), "queued")
    jobs = jobs_of(database, batch.id)
    assert [(j.position, j.file_name, j.source_path, j.input_size, j.status) for j in jobs] == [
        (0, names[0], str(paths[0]), sizes[0], "queued"),
        (1, names[1], str(paths[1]), sizes[1], "queued"),
        (2, names[2], str(paths[2]), sizes[2], "queued"),
    ]
    for job, path in zip(jobs, paths, strict=True):
        assert stored_bytes(database, bytes.fromhex(job.input_sha256)) == path.read_bytes()


def test_a_file_bigger_than_a_chunk_is_stored_in_chunks_and_reads_back_identical(
    database: Database, tmp_path: Path
) -> None:
    path = make_noise_png(tmp_path / "PL_DXB191_noise.png", side=960)
    assert 2 * CHUNK_SIZE < path.stat().st_size < 3 * CHUNK_SIZE

    (batch,) = submit(database, request_for([path])).batches

    (job,) = jobs_of(database, batch.id)
    assert job.input_sha256 == sha256_of(path).hex()
    assert count_rows(database, "blob_chunks") == 3
    assert stored_bytes(database, sha256_of(path)) == path.read_bytes()


def test_the_same_files_submitted_in_two_batches_are_stored_once(
    database: Database, tmp_path: Path
) -> None:
    make_batch(database, tmp_path / "monday", count=3, seed=0)
    make_batch(database, tmp_path / "tuesday", count=3, seed=0)

    assert (count_rows(database, "batches"), count_rows(database, "jobs")) == (2, 6)
    assert (count_rows(database, "blobs"), count_rows(database, "blob_chunks")) == (3, 3)


def test_two_identical_files_in_one_batch_are_stored_once(
    database: Database, tmp_path: Path
) -> None:
    original = make_png(tmp_path / "PL_DXB191_front.png", seed=7)
    copy = make_png(tmp_path / "copies" / "PL_DXB191_front_copy.png", seed=7)

    (batch,) = submit(database, request_for([original, copy])).batches

    assert batch.total_files == 2
    assert {j.input_sha256 for j in jobs_of(database, batch.id)} == {sha256_of(original).hex()}
    assert (count_rows(database, "blobs"), count_rows(database, "blob_chunks")) == (1, 1)


def test_progress_counts_stored_bytes_up_to_the_total(database: Database, tmp_path: Path) -> None:
    paths = [
        make_noise_png(tmp_path / "PL_DXB191_noise.png", side=700),
        make_png(tmp_path / "PL_DXB192_small.png"),
    ]
    total = sum(p.stat().st_size for p in paths)
    reports: list[tuple[str, int, int]] = []

    submit(database, request_for(paths), progress=lambda *report: reports.append(report))

    assert {phase for phase, _, _ in reports} == {"Storing"}
    assert {all_ for _, _, all_ in reports} == {total}
    done = [d for _, d, _ in reports]
    assert done == sorted(done)
    assert (done[0], done[-1]) == (0, total)
    assert len(set(done)) > 2  # the 1.4 MB file reports chunk by chunk


def test_files_already_stored_count_as_done_at_once(database: Database, tmp_path: Path) -> None:
    path = make_png(tmp_path / "first" / "PL_DXB191_view0.png")
    submit(database, request_for([path]))
    again = make_png(tmp_path / "again" / "PL_DXB191_view0.png")  # the same bytes
    reports: list[tuple[str, int, int]] = []

    submit(database, request_for([again]), progress=lambda *report: reports.append(report))

    size = again.stat().st_size
    assert [(done, all_) for _, done, all_ in reports] == [(0, size), (size, size)]


def test_cancelling_during_the_upload_leaves_no_batch_no_job_and_no_stored_file(
    database: Database, tmp_path: Path
) -> None:
    paths = [
        make_noise_png(tmp_path / "PL_DXB191_noise.png", side=960),
        make_png(tmp_path / "PL_DXB192_small.png"),
    ]
    pressed: list[bool] = []

    def progress(phase: str, done: int, total: int) -> None:
        if done > 0:  # the first chunk is on its way
            pressed.append(True)

    with pytest.raises(Cancelled):
        submit(database, request_for(paths), progress, cancelled=lambda: bool(pressed))

    for table in ("batches", "jobs", "blobs", "blob_chunks"):
        assert count_rows(database, table) == 0, table


def test_a_file_that_changed_after_it_was_hashed_is_refused_and_not_stored(
    database: Database, tmp_path: Path
) -> None:
    path = make_png(tmp_path / "PL_DXB191_front.png")
    as_hashed = FileDigest(hashlib.sha256(b"what it held earlier").digest(), path.stat().st_size)

    with pytest.raises(FileProblem, match="changed while it was being submitted"):
        blob_store.upload(database, [(path, as_hashed)], as_hashed.size)

    assert (count_rows(database, "blobs"), count_rows(database, "blob_chunks")) == (0, 0)


def test_an_unknown_pipeline_is_refused_naming_the_pipelines_there_are(
    database: Database, tmp_path: Path
) -> None:
    paths = make_pngs(tmp_path, ["PL_DXB191_front.png"])

    with pytest.raises(NotFound, match="choose one of original") as refused:
        submit(database, request_for(paths, pipeline="sepia"))

    assert "'sepia'" in str(refused.value)
    assert count_rows(database, "blobs") == 0


@pytest.mark.parametrize(
    ("description", "reason"),
    [("x" * 10_000, "the limit is 4,000"), ("before\x00after", "NUL character")],
    ids=["ten-thousand-characters", "nul"],
)
def test_a_description_that_cannot_be_stored_is_refused_before_anything_is_uploaded(
    database: Database, tmp_path: Path, description: str, reason: str
) -> None:
    paths = make_pngs(tmp_path, ["PL_DXB191_front.png"])

    with pytest.raises(InvalidRequest, match=reason):
        submit(database, request_for(paths, description=description))

    assert (count_rows(database, "batches"), count_rows(database, "blobs")) == (0, 0)


@pytest.mark.parametrize("description", ["", "  \n "])
def test_an_empty_description_is_replaced_by_one_that_counts_the_files(
    database: Database, tmp_path: Path, description: str
) -> None:
    paths = make_pngs(tmp_path, ["PL_DXB191_a.png", "PL_DXB192_b.png", "PL_DXB193_c.png"])

    (batch,) = submit(database, request_for(paths, description=description)).batches

    assert "3 PNG files" in batch.render_description
    with database.connect() as connection:
        stored = batch_queries.find_batch(connection, str(batch.id))
    assert stored.render_description == batch.render_description


MIXED = ["PL_DXB191_front.png", "ACME_X7_side.png", "PL_DXB192_back.png"]


def test_mixed_prefixes_go_into_one_batch_under_the_first_files_prefix_with_a_warning(
    database: Database, tmp_path: Path
) -> None:
    paths = make_pngs(tmp_path, MIXED)

    result = submit(database, request_for(paths, batch_date=DAY))

    (batch,) = result.batches
    assert (batch.base_directory_name, batch.total_files) == ("PL_DXB_2026-11-28_batch-1", 3)
    (warning,) = result.warnings
    assert "Other prefixes: ACME_X." in warning


def test_split_by_prefix_creates_one_batch_per_prefix_in_one_transaction(
    database: Database, tmp_path: Path
) -> None:
    paths = make_pngs(tmp_path, MIXED)

    result = submit(database, request_for(paths, batch_date=DAY, split_by_prefix=True))

    assert result.warnings == ()
    assert [b.base_directory_name for b in result.batches] == [
        "PL_DXB_2026-11-28_batch-1",
        "ACME_X_2026-11-28_batch-1",
    ]
    assert [[j.file_name for j in jobs_of(database, b.id)] for b in result.batches] == [
        ["PL_DXB191_front.png", "PL_DXB192_back.png"],
        ["ACME_X7_side.png"],
    ]
    with database.connect() as connection:
        writers = connection.execute(
            "SELECT xmin::text FROM batches UNION SELECT xmin::text FROM jobs"
        ).fetchall()
    assert len(writers) == 1  # every row written by the same transaction


def test_files_with_unusual_names_each_become_a_job(database: Database, tmp_path: Path) -> None:
    long_name = "PL_DXB191_" + "x" * 186 + ".png"
    paths = [
        make_png(tmp_path / "PL_DXB191 front view.png", seed=1),
        make_png(tmp_path / "PL_DXB191_Vue de face é 東京.png", seed=2),
        make_png(tmp_path / long_name, seed=3),
        make_png(tmp_path / "left" / "PL_DXB191_same.png", seed=4),
        make_png(tmp_path / "right" / "PL_DXB191_same.png", seed=5),
    ]
    assert len(long_name) == 200

    (batch,) = submit(database, request_for(paths)).batches

    jobs = jobs_of(database, batch.id)
    assert [(j.file_name, j.source_path) for j in jobs] == [(p.name, str(p)) for p in paths]


def test_a_file_name_that_is_not_utf8_becomes_a_job_shown_with_a_replacement_character(
    database: Database, tmp_path: Path
) -> None:
    path = make_png(Path(os.fsdecode(os.fsencode(tmp_path) + b"/PL_DXB191_caf\xe9.png")))

    (batch,) = submit(database, request_for([path])).batches

    (job,) = jobs_of(database, batch.id)
    assert job.file_name == "PL_DXB191_caf\ufffd.png"
    assert job.source_path == f"{tmp_path}/PL_DXB191_caf\ufffd.png"
    assert stored_bytes(database, sha256_of(path)) == path.read_bytes()


def test_deleting_a_batch_removes_its_jobs_and_the_files_no_other_batch_uses(
    database: Database, tmp_path: Path
) -> None:
    shared = make_png(tmp_path / "PL_DXB191_logo.png", seed=1)
    only_first = make_png(tmp_path / "first" / "PL_DXB192_front.png", seed=2)
    only_second = make_png(tmp_path / "second" / "PL_DXB193_back.png", seed=3)
    (first,) = submit(database, request_for([shared, only_first])).batches
    (second,) = submit(database, request_for([shared, only_second])).batches
    assert (count_rows(database, "blobs"), count_rows(database, "blob_chunks")) == (3, 3)

    with database.begin() as connection:
        deleted = batch_queries.delete_batch(connection, first.id)

    assert (deleted.base_directory_name, deleted.total_files) == (first.base_directory_name, 2)
    assert (count_rows(database, "batches"), count_rows(database, "jobs")) == (1, 2)
    assert (count_rows(database, "blobs"), count_rows(database, "blob_chunks")) == (2, 2)
    assert stored_hashes(database) == {sha256_of(shared), sha256_of(only_second)}
    for job, path in zip(jobs_of(database, second.id), [shared, only_second], strict=True):
        assert stored_bytes(database, bytes.fromhex(job.input_sha256)) == path.read_bytes()


def test_deleting_an_unknown_batch_is_refused(database: Database) -> None:
    unknown = uuid4()
    with pytest.raises(NotFound, match=str(unknown)), database.begin() as connection:
        batch_queries.delete_batch(connection, unknown)


def test_a_file_whose_only_batch_is_deleted_while_it_is_being_submitted_is_stored_again(
    database: Database, tmp_path: Path
) -> None:
    (earlier,) = make_batch(database, tmp_path / "earlier", count=1).batches
    again = make_png(tmp_path / "again" / "PL_DXB191_view0.png")  # the same bytes
    uploaded: list[bool] = []
    deleted: list[UUID] = []

    def progress(phase: str, done: int, total: int) -> None:
        if done == total:  # nothing to send: the file is stored
            uploaded.append(True)

    def delete_earlier_batch_once_uploaded() -> bool:
        # Between the upload and the batch's transaction, another workstation deletes the
        # only batch that uses the file, and the file with it.
        if uploaded and not deleted:
            with database.begin() as connection:
                deleted.append(batch_queries.delete_batch(connection, earlier.id).id)
        return False

    (batch,) = submit(
        database, request_for([again]), progress, delete_earlier_batch_once_uploaded
    ).batches

    assert deleted == [earlier.id]
    (job,) = jobs_of(database, batch.id)
    assert stored_bytes(database, bytes.fromhex(job.input_sha256)) == again.read_bytes()


def _lock_waiters(monitor: psycopg.Connection[Any]) -> int:
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return int(row[0]) if row else 0


def _wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never came true")
        time.sleep(0.01)


def test_submissions_of_the_same_files_in_different_orders_do_not_deadlock(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    x, w, y = (make_png(tmp_path / f"PL_DXB19{i}_{n}.png", seed=i) for i, n in enumerate("xwy"))
    with (
        ThreadPoolExecutor(2) as pool,
        psycopg.connect(database_conninfo) as third,
        psycopg.connect(database_conninfo, autocommit=True) as monitor,
    ):
        # A third workstation is storing w: the first submission stores x, then waits for w.
        third.execute("INSERT INTO blobs (sha256, size) VALUES (%s, 0)", (sha256_of(w),))
        first = pool.submit(submit, database, request_for([x, w, y]))
        _wait_until(lambda: _lock_waiters(monitor) == 1)
        # The second stores y, then waits for x, which the first holds.
        second = pool.submit(submit, database, request_for([y, x]))
        _wait_until(lambda: _lock_waiters(monitor) == 2 or second.done())
        third.rollback()  # the first goes on to y, which the second holds
        outcomes = [first.exception(timeout=30), second.exception(timeout=30)]

    assert outcomes == [None, None]
    assert count_rows(database, "batches") == 2
