"""The database keeps each batch's counts and status in step with its jobs, whoever changes them."""

import random
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdesk.domain.statuses import JobCounts, JobStatus, derive_batch_status
from batchdesk.storage import batch_queries
from batchdesk.storage.database import Database
from tests.factories import make_batch

STATUSES = [s.value for s in JobStatus]


def batch_state(database: Database, batch_id: UUID) -> dict[str, Any]:
    with database.connect() as connection:
        row = batch_queries.find_batch(connection, str(batch_id))
    raw = {"completed_at_raw": row.completed_at, "finished_at_raw": row.finished_at}
    return row.as_json() | raw


def job_ids(database: Database, batch_id: UUID) -> list[int]:
    with database.connect() as connection:
        return [job.id for job in batch_queries.list_jobs(connection, batch_id)]


def set_job_status(conninfo: str, job_id: int, status: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, job_id))


def test_original_walkthrough_queued_processing_completed(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    job1, job2, job3 = job_ids(database, batch.id)
    assert batch_state(database, batch.id)["status"] == "queued"

    set_job_status(database_conninfo, job1, "processing")
    state = batch_state(database, batch.id)
    assert (state["status"], state["processing_count"], state["queued_count"]) == (
        "processing",
        1,
        2,
    )

    set_job_status(database_conninfo, job1, "completed")
    assert batch_state(database, batch.id)["status"] == "processing"
    set_job_status(database_conninfo, job2, "completed")
    state = batch_state(database, batch.id)
    assert state["status"] == "processing"
    assert state["completed_at"] is None

    set_job_status(database_conninfo, job3, "completed")
    state = batch_state(database, batch.id)
    assert state["status"] == "completed"
    assert state["completed_count"] == 3
    assert state["completed_at"] is not None
    assert state["finished_at"] == state["completed_at"]
    assert state["updated_at"] >= state["created_at"]


def test_a_failed_batch_has_a_finish_time_and_no_completion_time(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=2).batches[0]
    first, second = job_ids(database, batch.id)
    set_job_status(database_conninfo, first, "completed")
    set_job_status(database_conninfo, second, "failed")
    finished = batch_state(database, batch.id)
    assert finished["status"] == "failed"
    assert finished["completed_at"] is None  # the README: completed_at belongs to `completed`
    assert finished["finished_at"] is not None

    # Touching a finished batch again (any update) keeps the time it finished.
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE batches SET render_description = 'renamed' WHERE id = %s", (batch.id,))
    assert batch_state(database, batch.id)["finished_at"] == finished["finished_at"]

    # Retrying the failed job makes the batch unfinished again.
    set_job_status(database_conninfo, second, "queued")
    state = batch_state(database, batch.id)
    assert (state["status"], state["completed_at"], state["finished_at"]) == (
        "processing",
        None,
        None,
    )

    # Completing it sets both, to the same moment, once.
    set_job_status(database_conninfo, second, "completed")
    done = batch_state(database, batch.id)
    assert done["status"] == "completed"
    assert done["completed_at"] is not None
    assert done["completed_at"] == done["finished_at"]
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE batches SET render_description = 'again' WHERE id = %s", (batch.id,))
    again = batch_state(database, batch.id)
    assert (again["completed_at"], again["finished_at"]) == (
        done["completed_at"],
        done["finished_at"],
    )


def test_a_batch_that_becomes_completed_from_failed_gets_its_completion_time(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=2).batches[0]
    first, second = job_ids(database, batch.id)
    set_job_status(database_conninfo, first, "completed")
    set_job_status(database_conninfo, second, "failed")
    failed = batch_state(database, batch.id)

    with psycopg.connect(database_conninfo) as conn:  # the failed job removed by hand
        conn.execute("DELETE FROM jobs WHERE id = %s", (second,))
    state = batch_state(database, batch.id)

    assert state["status"] == "completed"
    assert state["finished_at"] == failed["finished_at"]  # it finished then; it completed now
    assert state["completed_at"] is not None
    assert state["completed_at_raw"] >= state["finished_at_raw"]


def _backend_pid(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]


def _wait_until_blocked(conninfo: str, pid: int, timeout: float = 30) -> None:
    """Wait until backend `pid` is waiting on a lock (here: the batch row)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as monitor:
        while time.monotonic() < deadline:
            row = monitor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a lock")


def test_last_two_jobs_finishing_at_once_on_two_connections_complete_the_batch(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    first, second, third = job_ids(database, batch.id)
    set_job_status(database_conninfo, first, "completed")

    with (
        psycopg.connect(database_conninfo) as conn_a,
        psycopg.connect(database_conninfo) as conn_b,
    ):
        conn_a.execute("UPDATE jobs SET status = 'completed' WHERE id = %s", (second,))
        # B finishes the other job while A's transaction is still open: with a recount in the
        # trigger, B would count A's job as unfinished and leave the batch processing forever.
        pid_b = _backend_pid(conn_b)
        outcome: list[BaseException] = []

        def finish_third() -> None:
            try:
                conn_b.execute("UPDATE jobs SET status = 'completed' WHERE id = %s", (third,))
                conn_b.commit()
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=finish_third)
        worker.start()
        _wait_until_blocked(database_conninfo, pid_b)
        conn_a.commit()
        worker.join(timeout=30)
        assert not worker.is_alive()
        assert outcome == []

    state = batch_state(database, batch.id)
    assert (state["status"], state["completed_count"]) == ("completed", 3)
    assert state["completed_at"] is not None


@pytest.mark.slow
def test_random_status_changes_from_many_threads_leave_no_drift(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batches = [
        make_batch(database, tmp_path / f"b{i}", count=12, seed=i * 100).batches[0]
        for i in range(4)
    ]
    all_jobs = [job for b in batches for job in job_ids(database, b.id)]
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with psycopg.connect(database_conninfo) as conn:
                for _ in range(300):
                    chosen = rng.sample(all_jobs, rng.randint(1, 4))
                    statuses = [rng.choice(STATUSES) for _ in chosen]
                    # One statement per transaction, rows locked in id order, as the runner and
                    # the bulk operations do: such changes never deadlock with each other.
                    conn.execute(
                        "UPDATE jobs SET status = v.status "
                        "FROM unnest(%s::bigint[], %s::text[]) AS v(id, status) "
                        "WHERE jobs.id = v.id AND jobs.id IN "
                        "(SELECT id FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE)",
                        (chosen, statuses, chosen),
                    )
                    if rng.random() < 0.2:
                        conn.rollback()  # an abandoned change must leave no trace
                    else:
                        conn.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert errors == []

    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
    with psycopg.connect(database_conninfo) as conn:
        for batch in batches:
            counts = JobCounts(
                **{
                    status: conn.execute(
                        "SELECT count(*) FROM jobs WHERE batch_id = %s AND status = %s",
                        (batch.id, status),
                    ).fetchone()[0]  # type: ignore[index]
                    for status in STATUSES
                }
            )
            assert batch_state(database, batch.id)["status"] == derive_batch_status(counts)


def test_inserting_a_thousand_jobs_updates_their_batch_row_once(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=1).batches[0]
    with psycopg.connect(database_conninfo) as conn:
        sha, size = conn.execute(
            "SELECT input_sha256, input_size FROM jobs WHERE batch_id = %s", (batch.id,)
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline) "
            "SELECT %s, g, 'copy_' || g || '.png', %s, %s, 'original' "
            "FROM generate_series(1, 1000) AS g",
            (batch.id, sha, size),
        )
        updates = conn.execute(
            "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'batches'"
        ).fetchone()[0]  # type: ignore[index]
        conn.commit()
    assert updates == 1
    state = batch_state(database, batch.id)
    assert (state["total_files"], state["queued_count"]) == (1001, 1001)
    assert state["total_size"] == 1001 * size


def test_deleting_jobs_subtracts_them_from_their_batch(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    first, *_ = job_ids(database, batch.id)
    set_job_status(database_conninfo, first, "completed")
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("DELETE FROM jobs WHERE id <> %s AND batch_id = %s", (first, batch.id))
    state = batch_state(database, batch.id)
    assert (state["total_files"], state["completed_count"], state["status"]) == (
        1,
        1,
        "completed",
    )


def test_recount_repairs_a_batch_whose_counts_were_damaged(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    with psycopg.connect(database_conninfo) as conn:
        # Simulate damage from outside batchdesk, e.g. a hand-written UPDATE.
        conn.execute(
            "UPDATE batches SET queued_count = 0, completed_count = 3 WHERE id = %s", (batch.id,)
        )
    assert batch_state(database, batch.id)["status"] == "completed"
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == [batch.base_directory_name]
    with database.begin() as connection:
        assert batch_queries.recount_batch(connection, batch.id) is True
    with database.begin() as connection:
        assert batch_queries.recount_batch(connection, batch.id) is False
        assert batch_queries.drifted_batches(connection) == []
    state = batch_state(database, batch.id)
    assert (state["status"], state["queued_count"], state["completed_at"]) == ("queued", 3, None)
    assert state["finished_at"] is None


def test_committed_batch_changes_are_announced_and_rolled_back_ones_are_not(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=2).batches[0]
    first, second = job_ids(database, batch.id)
    with psycopg.connect(database_conninfo, autocommit=True) as listener:
        listener.execute("LISTEN batchdesk_batches")
        with psycopg.connect(database_conninfo) as conn:
            conn.execute("UPDATE jobs SET status = 'failed' WHERE id = %s", (first,))
            conn.rollback()
            conn.execute("UPDATE jobs SET status = 'processing' WHERE id = %s", (second,))
            conn.commit()
        payloads = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]
        payloads += [n.payload for n in listener.notifies(timeout=0.2)]
    assert len(payloads) == 1
    assert f'"id" : "{batch.id}"' in payloads[0]
    assert '"status" : "processing"' in payloads[0]


@settings(max_examples=60, deadline=None)
@given(counts=st.tuples(*[st.integers(min_value=0, max_value=3)] * 5))
def test_database_and_python_apply_the_same_status_rule(
    readonly_conninfo: str, counts: tuple[int, int, int, int, int]
) -> None:
    with psycopg.connect(readonly_conninfo) as conn:
        in_sql = conn.execute("SELECT batch_status_for(%s, %s, %s, %s, %s)", counts).fetchone()
    assert in_sql is not None
    assert in_sql[0] == derive_batch_status(JobCounts(*counts)).value
