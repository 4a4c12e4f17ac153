"""A worker whose temporary folder fills up while it receives a job's input."""

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from batchdesk.jobs.runner import Runner
from batchdesk.storage.database import Database
from batchdesk.storage.pool import only_row
from tests.factories import make_png
from tests.filesystems import mount_tmpfs
from tests.integration.jobs_support import FAST, submit_paths


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "work", "size=2m")


def noise_png(path: Path, side: int) -> Path:
    """A PNG that does not compress: `side` x `side` pixels of random RGB, ~3 * side² bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path)
    return path


def jobs(database: Database) -> list[tuple[str, str, int, str | None]]:
    with database.connect() as connection:
        rows = connection.execute(
            "SELECT file_name, status, attempts, last_error FROM jobs ORDER BY file_name"
        ).fetchall()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_full_temporary_folder_sends_the_job_back_with_a_sentence_and_the_worker_goes_on(
    database: Database, small_disk: Path, tmp_path: Path
) -> None:
    big = noise_png(tmp_path / "in" / "PL_DXB191_big.png", 1200)  # ~4.3 MB: over the 2 MB disk
    submit_paths(database, [big])  # "original": its input is received into a file
    runner = Runner(database, dataclasses.replace(FAST, threads=1, work_dir=small_disk))
    runner.start()
    try:
        # Tried once and back in the queue, for a worker with room (or this one, later).
        wait_for(lambda: jobs(database)[0][1:3] == ("queued", 1), "the job never came back")
        # The same worker, its connections given back after the failure, runs the next job.
        submit_paths(database, [make_png(tmp_path / "in2" / "PL_DXB192_small.png", seed=2)])
        wait_for(
            lambda: jobs(database)[1][1] == "completed", "the worker stopped after the full disk"
        )
    finally:
        runner.stop()

    (big_name, _, _, big_error), _small = jobs(database)
    assert big_name == "PL_DXB191_big.png"
    assert big_error is not None
    assert "is full (No space left on device)" in big_error
    assert str(small_disk) in big_error
    with database.connect() as connection:
        drift = only_row(connection.execute("SELECT count(*) FROM batch_count_drift"))[0]
    assert drift == 0
