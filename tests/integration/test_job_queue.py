"""The shared job queue: exactly-once claims, fenced completion, the reaper, retry and cancel."""

import threading
from collections import Counter
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from batchdesk.storage import batch_queries, job_queue, worker_liveness
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob
from tests.factories import make_batch


def batch_status(database: Database, batch_id: UUID) -> tuple[str, int, int, int, int]:
    with database.connect() as connection:
        b = batch_queries.find_batch(connection, str(batch_id))
    return (b.status, b.queued_count, b.processing_count, b.completed_count, b.failed_count)


def job_rows(conninfo: str, batch_id: UUID) -> list[tuple[int, str, int, str | None]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT id, status, attempts, last_error FROM jobs WHERE batch_id = %s ORDER BY id",
            (batch_id,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def age_worker(conninfo: str, worker_id: str, seconds: int) -> None:
    """Make a worker's last heartbeat `seconds` old, as if it had gone silent."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "UPDATE workers SET heartbeat_at = now() - make_interval(secs => %s) WHERE id = %s",
            (seconds, worker_id),
        )


def claim_all(database: Database, worker: str) -> list[ClaimedJob]:
    claimed = []
    while (job := job_queue.claim(database, worker)) is not None:
        claimed.append(job)
    return claimed


@pytest.mark.slow
@pytest.mark.parametrize(("jobs", "claimers"), [(1, 1), (64, 4), (500, 16)])
def test_every_job_is_claimed_exactly_once_however_many_claim_at_once(
    database_conninfo: str, database: Database, tmp_path: Path, jobs: int, claimers: int
) -> None:
    batch = make_batch(database, tmp_path, count=1).batches[0]
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline) "
            "SELECT batch_id, g, 'copy_' || g || '.png', input_sha256, input_size, pipeline "
            "FROM jobs, generate_series(1, %s) AS g WHERE batch_id = %s",
            (jobs - 1, batch.id),
        )
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(claimers)

    def claimer(number: int) -> None:
        # Each claimer has its own connection, as each workstation would.
        own = Database(database_conninfo, "claimer", keep_idle=1)
        worker = f"claimer-{number}"
        worker_liveness.register_worker(own, worker, 1)
        start.wait()
        while (job := job_queue.claim(own, worker)) is not None:
            assert job_queue.complete(own, job, [])
            with lock:
                claimed.append(job.id)
        own.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    rows = job_rows(database_conninfo, batch.id)
    assert sorted(claimed) == [r[0] for r in rows]
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert {(status, attempts) for _, status, attempts, _ in rows} == {("completed", 1)}
    assert batch_status(database, batch.id) == ("completed", 0, 0, jobs, 0)


def test_a_worker_declared_dead_cannot_finish_the_job_it_lost(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=1).batches[0]
    worker_liveness.register_worker(database, "zombie", 1)
    (lost,) = claim_all(database, "zombie")
    age_worker(database_conninfo, "zombie", 60)

    assert worker_liveness.reap(database, liveness_timeout=30) == worker_liveness.ReapResult(1, 0)
    worker_liveness.register_worker(database, "healthy", 1)
    (again,) = claim_all(database, "healthy")
    assert again.id == lost.id
    assert again.lease_token != lost.lease_token

    # The zombie wakes up and reports, in every way it could: nothing it says counts.
    assert job_queue.complete(database, lost, []) is False
    assert job_queue.fail(database, lost, "zombie says no", retryable=False) is None
    assert job_queue.release(database, lost) is False
    assert worker_liveness.heartbeat(database, "zombie").was_known is False
    assert job_rows(database_conninfo, batch.id)[0][1:3] == ("processing", 2)

    assert job_queue.complete(database, again, []) is True
    assert batch_status(database, batch.id) == ("completed", 0, 0, 1, 0)


def test_the_reaper_leaves_live_workers_alone_and_fails_jobs_out_of_attempts(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=2).batches[0]
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE jobs SET max_attempts = 1 WHERE batch_id = %s", (batch.id,))
    worker_liveness.register_worker(database, "alive", 1)
    worker_liveness.register_worker(database, "dead", 1)
    job_queue.claim(database, "alive")
    job_queue.claim(database, "dead")
    age_worker(database_conninfo, "dead", 120)

    assert worker_liveness.reap(database, liveness_timeout=30) == worker_liveness.ReapResult(0, 1)

    statuses = [row[1] for row in job_rows(database_conninfo, batch.id)]
    assert sorted(statuses) == ["failed", "processing"]
    failed = next(row for row in job_rows(database_conninfo, batch.id) if row[1] == "failed")
    assert failed[3] is not None
    assert "stopped responding" in failed[3]
    assert worker_liveness.heartbeat(database, "alive").was_known is True


def test_only_one_reaper_runs_at_a_time(database: Database, database_conninfo: str) -> None:
    with psycopg.connect(database_conninfo) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (worker_liveness.REAPER_LOCK_KEY,))
        assert worker_liveness.reap(database, liveness_timeout=30) is None
    assert worker_liveness.reap(database, liveness_timeout=30) == worker_liveness.ReapResult(0, 0)


def test_a_failure_worth_retrying_goes_back_to_the_queue_later_until_attempts_run_out(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=1).batches[0]
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE jobs SET max_attempts = 2 WHERE batch_id = %s", (batch.id,))
    worker_liveness.register_worker(database, "w", 1)

    (first,) = claim_all(database, "w")
    assert job_queue.fail(database, first, "disk full", retryable=True) == "queued"
    assert job_queue.claim(database, "w") is None  # not before its back-off has passed
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE jobs SET run_after = now() WHERE batch_id = %s", (batch.id,))
    (second,) = claim_all(database, "w")
    assert job_queue.fail(database, second, "disk full again", retryable=True) == "failed"
    assert job_rows(database_conninfo, batch.id)[0][1:] == ("failed", 2, "disk full again")
    assert batch_status(database, batch.id)[0] == "failed"


def test_a_released_job_is_queued_again_without_using_an_attempt(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=1).batches[0]
    worker_liveness.register_worker(database, "w", 1)
    (job,) = claim_all(database, "w")
    assert job_queue.release(database, job) is True
    assert job_rows(database_conninfo, batch.id)[0][1:3] == ("queued", 0)
    assert batch_status(database, batch.id)[0] == "queued"


def test_retry_queues_only_failed_jobs_with_fresh_attempts(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    worker_liveness.register_worker(database, "w", 1)
    first, second, third = claim_all(database, "w")
    job_queue.fail(database, first, "bad file", retryable=False)
    job_queue.fail(database, second, "bad file", retryable=False)
    job_queue.complete(database, third, [])
    assert batch_status(database, batch.id)[0] == "failed"

    assert job_queue.retry_batch(database, batch.id) == 2
    assert batch_status(database, batch.id) == ("processing", 2, 0, 1, 0)
    assert [row[1:] for row in job_rows(database_conninfo, batch.id)] == [
        ("queued", 0, None),
        ("queued", 0, None),
        ("completed", 1, None),
    ]


def test_cancel_stops_queued_and_running_jobs_and_fences_the_running_ones(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    worker_liveness.register_worker(database, "w", 1)
    running = job_queue.claim(database, "w")
    assert running is not None

    assert job_queue.cancel_batch(database, batch.id) == job_queue.CancelResult(2, 1)
    assert worker_liveness.still_held(database, [running]) == set()
    assert job_queue.complete(database, running, []) is False
    assert batch_status(database, batch.id)[0] == "cancelled"


@pytest.mark.slow
def test_cancel_and_retry_racing_with_finishing_workers_never_deadlock(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=40).batches[0]
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(number: int) -> None:
        own = Database(database_conninfo, "worker", keep_idle=1)
        name = f"w{number}"
        worker_liveness.register_worker(own, name, 1)
        try:
            while not stop.is_set():
                job = job_queue.claim(own, name)
                if job is None:
                    continue
                if job.id % 3:
                    job_queue.complete(own, job, [])
                else:
                    job_queue.fail(own, job, "bad", retryable=False)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    def lead() -> None:
        try:
            for _ in range(30):
                job_queue.cancel_batch(database, batch.id)
                job_queue.retry_batch(database, batch.id)
                with psycopg.connect(database_conninfo) as conn:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', lease_token = NULL "
                        "WHERE batch_id = %s AND status = 'cancelled'",
                        (batch.id,),
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    lead()
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []


def test_the_reaper_racing_a_finishing_worker_never_both_completes_and_requeues(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    make_batch(database, tmp_path, count=20)
    worker_liveness.register_worker(database, "slow", 1)
    reaper = Database(database_conninfo, "reaper", keep_idle=1)
    outcomes: list[tuple[int, bool]] = []
    try:
        for job in claim_all(database, "slow"):
            # The worker has gone quiet long enough to be declared dead, and is finishing
            # its job at the very moment the reaper looks.
            age_worker(database_conninfo, "slow", 60)
            start = threading.Barrier(2)
            finished: list[bool] = []

            def finish(
                claimed: ClaimedJob = job,
                done: list[bool] = finished,
                go: threading.Barrier = start,
            ) -> None:
                go.wait()
                done.append(job_queue.complete(database, claimed, []))

            def reap(go: threading.Barrier = start) -> None:
                go.wait()
                worker_liveness.reap(reaper, liveness_timeout=30)

            threads = [threading.Thread(target=finish), threading.Thread(target=reap)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            outcomes.append((job.id, finished[0]))
            worker_liveness.register_worker(database, "slow", 1)  # back for the next round
    finally:
        reaper.close()

    with psycopg.connect(database_conninfo) as conn:
        status = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
    for job_id, completed in outcomes:
        # Whoever won, the job is in exactly one state: done by the worker, or back in the queue.
        assert status[job_id] == ("completed" if completed else "queued")
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []


def test_a_deadlock_inside_a_queue_transaction_is_run_again_and_rolled_back_first(
    database: Database,
) -> None:
    """The server's own deadlock error (SQLSTATE 40P01) from a statement inside the work."""
    attempts: list[int] = []

    def work(connection: psycopg.Connection) -> int:
        attempts.append(len(attempts) + 1)
        connection.execute(
            "INSERT INTO studio_settings (key, value) VALUES ('try', %s)", (str(len(attempts)),)
        )
        if len(attempts) == 1:
            connection.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = 'deadlock_detected'; END $$"
            )
        return len(attempts)

    assert job_queue.with_retry(database, work) == 2
    with database.connect() as connection:
        rows = connection.execute("SELECT value FROM studio_settings WHERE key = 'try'").fetchall()
    assert rows == [("2",)]  # the first attempt's row went with its rollback


def test_an_error_that_is_not_a_deadlock_is_not_run_again(database: Database) -> None:
    attempts: list[int] = []

    def work(connection: psycopg.Connection) -> None:
        attempts.append(1)
        connection.execute("SELECT * FROM no_such_table")

    with pytest.raises(psycopg.errors.UndefinedTable):
        job_queue.with_retry(database, work)
    assert attempts == [1]
