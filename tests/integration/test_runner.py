"""The runner on real PostgreSQL and real processes: jobs run once, crashes cost seconds."""

import hashlib
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from PIL import Image

from batchdesk.domain.file_selection import select_files
from batchdesk.jobs.job_execution import JobEvent
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import batch_queries, blob_store
from batchdesk.storage.database import Database
from batchdesk.storage.submission import SubmissionRequest, SubmissionResult, submit
from tests.factories import make_batch, make_damaged_png, make_png
from tests.integration.jobs_support import SLOW_COPY, add_slow_pipeline


def submit_files(database: Database, paths: list[Path], pipeline: str) -> SubmissionResult:
    selection = select_files(paths)
    return submit(
        database,
        SubmissionRequest(
            files=selection.files, source_paths=tuple(paths), pipeline=pipeline, created_by="t@t"
        ),
    )


def job_states(conninfo: str, batch_id: UUID) -> list[tuple[str, int, str | None]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT status, attempts, last_error FROM jobs WHERE batch_id = %s ORDER BY position",
            (batch_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def count_status(conninfo: str, batch_id: UUID, status: str) -> int:
    return sum(1 for s, _, _ in job_states(conninfo, batch_id) if s == status)


FAST = RunnerConfig(threads=2, heartbeat_interval=0.5, poll_interval=0.5, liveness_timeout=3)


@contextmanager
def running(
    database: Database, config: RunnerConfig = FAST
) -> Iterator[tuple[Runner, list[JobEvent]]]:
    events: list[JobEvent] = []
    runner = Runner(database, config, on_event=events.append)
    runner.start()
    try:
        yield runner, events
    finally:
        runner.stop()


def test_a_batch_runs_to_completion_and_its_outputs_are_stored(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=4).batches[0]

    with running(database) as (runner, events):
        assert runner.drained.wait(60)

    assert job_states(database_conninfo, batch.id) == [("completed", 1, None)] * 4
    with database.connect() as connection:
        state = batch_queries.find_batch(connection, str(batch.id))
        jobs = batch_queries.list_jobs(connection, batch.id)
        outputs = connection.execute(
            "SELECT o.name, o.sha256, j.input_sha256 "
            "FROM job_outputs o JOIN jobs j ON j.id = o.job_id"
        ).fetchall()
    assert (state.status, state.completed_count) == ("completed", 4)
    assert state.completed_at is not None
    # The default pipeline delivers each input unchanged, under its own name.
    assert sorted(o[0] for o in outputs) == sorted(j.file_name for j in jobs)
    assert all(bytes(o[1]) == bytes(o[2]) for o in outputs)
    assert sorted(e.kind for e in events if e.kind != "started") == ["completed"] * 4


def test_a_bad_file_fails_alone_with_a_sentence_and_the_rest_of_the_batch_runs(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    good = make_png(tmp_path / "PL_DXB191_good.png", size=(64, 64))
    damaged = make_damaged_png(tmp_path / "PL_DXB192_cut.png", size=(256, 256), seed=99)
    batch = submit_files(database, [good, damaged], "original").batches[0]

    with running(database) as (runner, _events):
        assert runner.drained.wait(60)

    (good_state, bad_state) = job_states(database_conninfo, batch.id)
    assert good_state == ("completed", 1, None)
    assert bad_state[0] == "failed"
    assert bad_state[2] is not None
    assert "PL_DXB192_cut.png" in bad_state[2]
    with database.connect() as connection:
        assert batch_queries.find_batch(connection, str(batch.id)).status == "failed"


def test_a_clean_stop_gives_back_the_jobs_that_have_not_finished(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    pipeline = add_slow_pipeline(database_conninfo, seconds=1.5)
    paths = [make_png(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(6)]
    batch = submit_files(database, paths, pipeline).batches[0]

    with running(database) as (runner, events):
        wait_for(lambda: runner.busy == 2, "two jobs running")

    states = job_states(database_conninfo, batch.id)
    assert count_status(database_conninfo, batch.id, "processing") == 0
    assert {s for s, _, _ in states} <= {"queued", "completed"}
    # A job given back does not use up one of its attempts.
    assert all(attempts == 0 for status, attempts, _ in states if status == "queued")
    assert any(e.kind == "released" for e in events)
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM workers").fetchone() == (0,)


def test_cancelling_a_running_batch_stops_its_jobs_at_the_next_step(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    from batchdesk.storage import job_queue

    pipeline = add_slow_pipeline(database_conninfo, seconds=1.0)
    paths = [make_png(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(4)]
    batch = submit_files(database, paths, pipeline).batches[0]

    with running(database) as (runner, events):
        wait_for(lambda: runner.busy == 2, "two jobs running")
        result = job_queue.cancel_batch(database, batch.id)
        wait_for(lambda: runner.busy == 0, "the running jobs to stop")

    assert result == job_queue.CancelResult(queued=2, running=2)
    assert [s for s, _, _ in job_states(database_conninfo, batch.id)] == ["cancelled"] * 4
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM job_outputs").fetchone() == (0,)
    assert sum(1 for e in events if e.kind == "dropped") == 2


WORKER_CODE = """
import sys, threading
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage.database import Database
conninfo = sys.argv[1]
database = Database(conninfo, "worker")
runner = Runner(database, RunnerConfig(threads=1, heartbeat_interval=0.5, poll_interval=0.5),
                worker_name="doomed")
runner.start()
print(runner.worker_id, flush=True)
threading.Event().wait()
"""


@pytest.mark.slow
def test_a_worker_killed_mid_job_costs_seconds_and_another_finishes_the_batch(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    pipeline = add_slow_pipeline(database_conninfo, seconds=3)
    paths = [make_png(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(2)]
    batch = submit_files(database, paths, pipeline).batches[0]
    src = Path(__file__).resolve().parents[2] / "src"
    doomed = subprocess.Popen(
        [sys.executable, "-c", WORKER_CODE, database_conninfo],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(src)},
    )
    try:
        assert doomed.stdout is not None
        doomed_id = doomed.stdout.readline().strip()
        wait_for(
            lambda: count_status(database_conninfo, batch.id, "processing") == 1,
            "the doomed worker to start a job",
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
    finally:
        doomed.kill()
        doomed.wait(30)
        if doomed.stdout is not None:
            doomed.stdout.close()

    with running(database) as (runner, _events):
        assert runner.drained.wait(90)

    states = job_states(database_conninfo, batch.id)
    assert [s for s, _, _ in states] == ["completed", "completed"]
    assert sorted(a for _, a, _ in states) == [1, 2]  # the killed attempt counts once
    with psycopg.connect(database_conninfo) as conn:
        completed_at = conn.execute(
            "SELECT completed_at FROM batches WHERE id = %s", (batch.id,)
        ).fetchone()
        assert conn.execute(
            "SELECT count(*) FROM workers WHERE id = %s", (doomed_id,)
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM job_outputs").fetchone() == (2,)
    assert completed_at is not None


@pytest.mark.slow
def test_terminating_every_database_connection_mid_run_loses_nothing_and_repeats_nothing(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    pipeline = add_slow_pipeline(database_conninfo, seconds=0.3)
    paths = [make_png(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(8)]
    batch = submit_files(database, paths, pipeline).batches[0]
    dbname = psycopg.conninfo.conninfo_to_dict(database_conninfo)["dbname"]

    def terminate_all() -> None:
        with psycopg.connect(database_conninfo, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )

    with running(database) as (runner, _events):
        for _ in range(3):
            wait_for(lambda: runner.busy > 0 or runner.drained.is_set(), "a running job")
            terminate_all()
            time.sleep(0.4)
        assert runner.drained.wait(120)

    states = job_states(database_conninfo, batch.id)
    assert [s for s, _, _ in states] == ["completed"] * 8
    with psycopg.connect(database_conninfo) as conn:
        per_job = conn.execute(
            "SELECT j.id, count(o.name) FROM jobs j LEFT JOIN job_outputs o ON o.job_id = j.id "
            "WHERE j.batch_id = %s GROUP BY j.id",
            (batch.id,),
        ).fetchall()
    assert {count for _, count in per_job} == {1}
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []


def test_outputs_read_back_identical_to_what_the_pipeline_wrote(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    path = make_png(tmp_path / "PL_DXB191_v.png", size=(300, 200), mode="RGBA", seed=5)
    batch = submit_files(database, [path], "original").batches[0]
    with running(database) as (runner, _events):
        assert runner.drained.wait(60)
    with database.connect() as connection:
        (sha,) = connection.execute("SELECT sha256 FROM job_outputs").fetchone()
        data = b"".join(blob_store.read_chunks(connection, bytes(sha)))
    assert hashlib.sha256(data).digest() == bytes(sha)
    out = tmp_path / "out.png"
    out.write_bytes(data)
    with Image.open(out) as image:
        assert (image.size, image.mode) == ((300, 200), "RGBA")
    assert batch.total_files == 1


# -- the memory budget ------------------------------------------------------------------------

MIB = 1 << 20


def add_pipeline(conninfo: str, name: str, steps: list[dict[str, object]]) -> str:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO pipelines (name, description, steps) VALUES (%s, '', %s)",
            (name, json.dumps(steps)),
        )
    return name


def most_at_once(events: list[JobEvent]) -> int:
    """Return the most jobs that were running at the same time, from the runner's events."""
    running_now: set[int] = set()
    most = 0
    for event in events:
        if event.kind == "started":
            running_now.add(event.job_id)
            most = max(most, len(running_now))
        else:
            running_now.discard(event.job_id)
    return most


def test_jobs_whose_canvases_do_not_fit_the_budget_together_run_one_at_a_time(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    # Small inputs, big canvases: a 3000 x 3000 RGB canvas (36 MB) that a tool then reads back.
    # Each job is estimated at ~110 MB, so one fits the 200 MB budget and two do not.
    slow_copy = [sys.executable, "-c", SLOW_COPY, "{input}", "{output}", "1"]
    pipeline = add_pipeline(
        database_conninfo,
        "big-canvas",
        [
            {"op": "pad", "width": 3000, "height": 3000},
            {"op": "external", "args": slow_copy, "timeout": 120},
            {"op": "output", "compress_level": 1},
        ],
    )
    paths = [make_png(tmp_path / f"PL_DXB{191 + i}_v.png", size=(32, 32), seed=i) for i in range(2)]
    batch = submit_files(database, paths, pipeline).batches[0]

    with running(database, replace(FAST, memory_budget=200 * MIB)) as (runner, events):
        assert runner.drained.wait(90)

    assert [s for s, _, _ in job_states(database_conninfo, batch.id)] == ["completed"] * 2
    assert most_at_once(events) == 1


def test_a_job_that_can_never_fit_the_budget_fails_with_a_sentence_and_others_run(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    pipeline = add_pipeline(
        database_conninfo,
        "huge-canvas",
        [{"op": "pad", "width": 6000, "height": 6000}, {"op": "output"}],
    )
    huge = submit_files(
        database, [make_png(tmp_path / "PL_DXB191_v.png", size=(32, 32))], pipeline
    ).batches[0]
    small = submit_files(
        database, [make_png(tmp_path / "PL_DXB192_v.png", size=(32, 32), seed=1)], "original"
    ).batches[0]

    with running(database, replace(FAST, memory_budget=64 * MIB)) as (runner, events):
        assert runner.drained.wait(90)

    message = (
        "PL_DXB191_v.png, step 1 (pad): a 6000 × 6000 canvas needs about 137 MB of memory, "
        "more than this worker's memory budget of 64 MB (memory_budget_mb in the settings): "
        "raise the budget and retry the batch, or change pipeline huge-canvas."
    )
    assert job_states(database_conninfo, huge.id) == [("failed", 1, message)]
    assert job_states(database_conninfo, small.id) == [("completed", 1, None)]
    assert [(e.kind, e.message) for e in events if e.file_name == "PL_DXB191_v.png"] == [
        ("started", ""),
        ("failed", message),
    ]


# -- Pillow's warnings ------------------------------------------------------------------------


def make_warned_png(path: Path) -> Path:
    """Write a PNG with an animation header claiming 0 frames: Pillow warns and reads it."""
    make_png(path, size=(16, 16))
    data = path.read_bytes()
    actl = b"acTL" + bytes(8)
    chunk = struct.pack(">I", 8) + actl + struct.pack(">I", zlib.crc32(actl))
    path.write_bytes(data[:33] + chunk + data[33:])  # right after the header
    return path


def test_pillow_s_warnings_are_logged_with_their_job_and_not_printed(
    database: Database,
    database_conninfo: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    pipeline = add_pipeline(database_conninfo, "to-jpeg", [{"op": "output", "format": "jpeg"}])
    source = make_warned_png(tmp_path / "PL_DXB191_v.png")
    batch = submit_files(database, [source], pipeline).batches[0]

    with (
        caplog.at_level(logging.WARNING, logger="batchdesk.jobs.runner"),
        running(database) as (runner, _events),
    ):
        assert runner.drained.wait(60)

    assert job_states(database_conninfo, batch.id) == [("completed", 1, None)]
    warned = [r.getMessage() for r in caplog.records if "Invalid APNG" in r.getMessage()]
    assert warned == [
        f"{batch.base_directory_name} / PL_DXB191_v.png: Pillow warned: UserWarning: Invalid "
        "APNG, will use default PNG image if possible"
    ]
    assert "Invalid APNG" not in capfd.readouterr().err
