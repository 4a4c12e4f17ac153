"""The runner under the studio's steering: worker pause and resume, and each attempt's log."""

import sys
from pathlib import Path
from uuid import UUID

import psycopg

from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import job_attempts, job_queue, workers
from batchdesk.storage.database import Database
from tests.factories import make_batch, make_png
from tests.integration.test_runner import (
    FAST,
    add_pipeline,
    job_states,
    make_warned_png,
    running,
    submit_files,
    wait_for,
)


def worker_state(conninfo: str, worker_id: str) -> str | None:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT state FROM workers WHERE id = %s", (worker_id,)).fetchone()
    return None if row is None else str(row[0])


def attempt_workers(database: Database, batch_id: UUID) -> set[str]:
    with database.connect() as connection:
        found = job_attempts.batch_histories(connection, batch_id)
    return {a.worker for attempts in found.values() for a in attempts}


def test_a_pause_that_arrives_without_notify_is_obeyed_at_the_next_heartbeat(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    states: list[str] = []
    paused_runner = Runner(database, FAST, on_state=states.append)
    paused_runner.start()
    try:
        # Written with the triggers off (as through a pooler that drops notifications): only
        # the runner's own heartbeat can bring the news.
        with psycopg.connect(database_conninfo) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(
                "UPDATE workers SET desired_state = 'paused' WHERE id = %s",
                (paused_runner.worker_id,),
            )
        wait_for(
            lambda: worker_state(database_conninfo, paused_runner.worker_id) == "paused",
            "the worker to report itself paused",
        )
        assert paused_runner.paused
        assert states == ["paused"]
        batch = make_batch(database, tmp_path, count=3).batches[0]

        # The paused runner is awake (the submission woke it) and polls; another takes it all.
        with running(database) as (other, _events):
            assert other.drained.wait(60)
            assert attempt_workers(database, batch.id) == {other.worker_id}

        workers.set_desired_state(database, paused_runner.worker_id, "running")
        wait_for(lambda: not paused_runner.paused, "the worker to run again")
        assert states == ["paused", "running"]
    finally:
        paused_runner.stop()


def test_a_paused_runner_declared_dead_comes_back_paused(
    database: Database, database_conninfo: str
) -> None:
    runner = Runner(database, FAST)
    runner.start()
    try:
        workers.set_desired_state(database, runner.worker_id, "paused")
        wait_for(lambda: runner.paused, "the worker to pause")
        with psycopg.connect(database_conninfo) as conn:  # what the reaper does to a silent one
            conn.execute("DELETE FROM workers WHERE id = %s", (runner.worker_id,))
        wait_for(
            lambda: worker_state(database_conninfo, runner.worker_id) is not None,
            "the worker to list itself again",
        )

        # Listed again as it was: paused, so the claim (which reads the row) takes nothing.
        assert worker_state(database_conninfo, runner.worker_id) == "paused"
        assert runner.paused
    finally:
        runner.stop()


def test_a_claim_whose_answer_was_lost_goes_back_to_the_queue_and_runs(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    runner = Runner(database, FAST)
    batch = make_batch(database, tmp_path, count=1).batches[0]
    # The claim committed on the server, but its answer never reached the worker (the
    # connection died on the way back): the job is the worker's, and the worker never knew.
    [lost] = job_queue.claim_many(database, runner.worker_id, 1)
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = %s", (lost.id,)
        )
    runner.start()
    try:
        wait_for(
            lambda: [s for s, _n, _e in job_states(database_conninfo, batch.id)] == ["completed"],
            "the stray job to be given back and run",
        )
    finally:
        runner.stop()

    with database.connect() as connection:
        [attempts] = job_attempts.batch_histories(connection, batch.id).values()
    assert [(a.outcome, a.worker) for a in attempts] == [
        ("lost", runner.worker_id),
        ("completed", runner.worker_id),
    ]
    assert "lost track of the job" in (attempts[0].error or "")


def test_a_notified_pause_is_obeyed_long_before_the_next_heartbeat(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    slow_beats = RunnerConfig(threads=1, heartbeat_interval=600, poll_interval=0.5)
    with running(database, slow_beats) as (runner, _events):
        wait_for(
            lambda: worker_state(database_conninfo, runner.worker_id) == "running",
            "the worker's first heartbeat",
        )

        [steered] = workers.set_desired_state(database, runner.worker_id, "paused")

        assert steered.was == "running"
        wait_for(lambda: runner.paused, "the worker to pause", timeout=120)
        # It reported the new state at once too, not at its next heartbeat ten minutes away.
        wait_for(
            lambda: worker_state(database_conninfo, runner.worker_id) == "paused",
            "the worker to report itself paused",
            timeout=120,
        )
        batch = make_batch(database, tmp_path, count=1).batches[0]
        workers.set_desired_state(database, runner.worker_id, "running")
        wait_for(
            lambda: job_states(database_conninfo, batch.id)[0][0] == "completed",
            "the resumed worker to run the batch",
            timeout=120,
        )


def test_each_attempt_keeps_what_its_external_tool_and_pillow_said(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    talkative = "\n".join(
        [
            "import shutil, sys",
            "print('pngquant: colour profile dropped', file=sys.stderr)",
            "shutil.copy(sys.argv[1], sys.argv[2])",
        ]
    )
    pipeline = add_pipeline(
        database_conninfo,
        "talkative",
        [
            {"op": "external", "args": [sys.executable, "-c", talkative, "{input}", "{output}"]},
            {"op": "output", "format": "png"},
        ],
    )
    quiet = make_png(tmp_path / "PL_DXB191_quiet.png", seed=3)
    warned = make_warned_png(tmp_path / "PL_DXB192_warned.png")
    batch = submit_files(database, [quiet, warned], pipeline).batches[0]

    with running(database) as (runner, _events):
        assert runner.drained.wait(60)

    with database.connect() as connection:
        found = job_attempts.batch_histories(connection, batch.id)
    logs = [attempts[-1].log for _job, attempts in sorted(found.items())]
    tool_line = f"{sys.executable}: pngquant: colour profile dropped"
    assert logs[0] == tool_line
    assert logs[1] is not None
    assert logs[1].splitlines() == [
        tool_line,
        "Pillow warned: UserWarning: Invalid APNG, will use default PNG image if possible",
    ]
    assert job_states(database_conninfo, batch.id) == [("completed", 1, None)] * 2
