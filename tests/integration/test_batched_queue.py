"""The queue's batched paths keep its promises: several jobs claimed or completed per statement.

A worker claims up to its free slots in one statement and completes what finished together in
one transaction. Each job is still its own: the claim's order and pause hold for every job of a
multi-claim, a completion whose lease was lost changes nothing while the others complete, and
the batch counts the triggers keep (by deltas, one update per batch) stay exact.
"""

import subprocess
import sys
import threading
from pathlib import Path
from uuid import UUID

import psycopg

from batchdesk.storage import (
    batch_queries,
    blob_store,
    farm_controls,
    job_attempts,
    job_queue,
    worker_liveness,
    workers,
)
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob, Completion, StoredOutput
from tests.factories import make_batch, make_png


def new_batch(database: Database, folder: Path, count: int, prefix: str, seed: int = 0) -> UUID:
    return (
        make_batch(database, folder / prefix, count=count, prefix=prefix, seed=seed).batches[0].id
    )


def db_check_agrees(database: Database, conninfo: str) -> None:
    """What `batchdesk db check` checks holds, and the command itself says so (exit 0)."""
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
        assert job_attempts.unmatched_attempts(connection) == 0
    result = subprocess.run(
        [sys.executable, "-m", "batchdesk", "--database-url", conninfo, "db", "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All batch counts agree with their jobs." in result.stdout


def statuses(conninfo: str, ids: list[int]) -> dict[int, str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT id, status FROM jobs WHERE id = ANY(%s)", (ids,)).fetchall()
    return {row[0]: row[1] for row in rows}


def output_for(folder: Path, job: ClaimedJob) -> tuple[StoredOutput, Path]:
    """A real PNG as the job's output, described as the runner describes its outputs."""
    path = make_png(folder / f"out-{job.id}.png", size=(16, 12), seed=job.id)
    return StoredOutput(f"out-{job.id}.png", blob_store.hash_file(path), "image/png", 16, 12), path


# --- claiming several -----------------------------------------------------------------------


def test_a_multi_claim_takes_the_highest_priority_then_the_oldest_and_skips_paused_batches(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    low = new_batch(database, tmp_path, 2, "LO_LOW")
    high = new_batch(database, tmp_path, 2, "HI_HIGH", seed=10)
    held = new_batch(database, tmp_path, 2, "PA_PAUSED", seed=20)
    middle = new_batch(database, tmp_path, 2, "MI_MID", seed=30)
    farm_controls.set_priority(database, [low], 10)
    farm_controls.set_priority(database, [high], 90)
    farm_controls.set_priority(database, [held], 99)
    farm_controls.pause(database, [held])
    worker_liveness.register_worker(database, "w", 8)

    first = job_queue.claim_many(database, "w", 3)
    rest = job_queue.claim_many(database, "w", 8)

    assert [job.batch_id for job in first] == [high, high, middle]
    assert [job.batch_id for job in rest] == [middle, low, low]  # the paused batch waits
    assert job_queue.claim_many(database, "w", 8) == []
    farm_controls.resume(database, [held])
    assert [job.batch_id for job in job_queue.claim_many(database, "w", 8)] == [held, held]
    with database.connect() as connection:
        assert job_attempts.unmatched_attempts(connection) == 0  # each claim opened its attempt
    db_check_agrees(database, database_conninfo)


def test_a_worker_told_to_pause_claims_nothing_however_many_slots_it_has(
    database: Database, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 3, "PL_DXB")
    worker_liveness.register_worker(database, "host-a:1:aaa", 4)

    workers.set_desired_state(database, "host-a:1:aaa", "paused")

    assert job_queue.claim_many(database, "host-a:1:aaa", 4) == []
    assert len(job_queue.claim_many(database, "host-b:1:bbb", 4)) == 3


def test_racing_multi_claims_hand_out_every_job_exactly_once(
    database: Database, tmp_path: Path
) -> None:
    for index in range(4):
        new_batch(database, tmp_path, 16, f"R{index}_RACE", seed=100 * index)
    taken: list[list[int]] = [[] for _ in range(6)]
    barrier = threading.Barrier(len(taken))

    def claimer(index: int) -> None:
        barrier.wait()
        while jobs := job_queue.claim_many(database, f"w{index}", 1 + index % 3):
            taken[index].extend(job.id for job in jobs)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(taken))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    every = [job_id for ids in taken for job_id in ids]
    assert len(every) == 64
    assert len(set(every)) == 64


# --- completing several ---------------------------------------------------------------------


def test_a_batch_of_completions_with_one_lost_lease_completes_the_others_and_not_that_one(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    kept = new_batch(database, tmp_path, 3, "KE_KEPT")
    cancelled = new_batch(database, tmp_path, 1, "CA_CANCEL", seed=10)
    worker_liveness.register_worker(database, "w", 4)
    jobs = job_queue.claim_many(database, "w", 4)
    assert {job.batch_id for job in jobs} == {kept, cancelled}
    lost = next(job for job in jobs if job.batch_id == cancelled)
    job_queue.cancel_batch(database, cancelled, by="lead@studio")  # its lease is gone

    done = job_queue.complete_many(
        database,
        [Completion(job, [output_for(tmp_path, job)], log=f"log {job.id}") for job in jobs],
    )

    others = [job.id for job in jobs if job is not lost]
    assert done == set(others)
    assert statuses(database_conninfo, [job.id for job in jobs]) == {
        **dict.fromkeys(others, "completed"),
        lost.id: "cancelled",
    }
    with psycopg.connect(database_conninfo) as conn:
        outputs = conn.execute("SELECT job_id, name FROM job_outputs ORDER BY job_id").fetchall()
        attempts = dict(
            conn.execute(
                "SELECT job_id, (outcome, log) FROM job_attempts WHERE job_id = ANY(%s)",
                ([job.id for job in jobs],),
            ).fetchall()
        )
    assert outputs == [(job_id, f"out-{job_id}.png") for job_id in sorted(others)]
    assert {job_id: attempts[job_id] for job_id in others} == {
        job_id: ("completed", f"log {job_id}") for job_id in others
    }
    assert attempts[lost.id] == ("cancelled", None)  # the cancel closed it; the log went nowhere
    with database.connect() as connection:
        assert batch_queries.find_batch(connection, str(kept)).status == "completed"
    db_check_agrees(database, database_conninfo)


def test_a_zombie_in_a_batch_of_completions_changes_nothing_of_the_job_taken_over(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 2, "ZO_ZOMBIE")
    worker_liveness.register_worker(database, "zombie", 2)
    first, second = job_queue.claim_many(database, "zombie", 2)
    # The zombie is declared dead: both jobs go back to the queue and another worker takes one.
    worker_liveness.unregister_worker(database, "zombie")
    reaped = worker_liveness.reap(database, 30.0, reaper="reaper")
    assert reaped == worker_liveness.ReapResult(requeued=2, failed=0)
    worker_liveness.register_worker(database, "heir", 1)
    [taken_over] = job_queue.claim_many(database, "heir", 1)

    done = job_queue.complete_many(
        database, [Completion(first, [output_for(tmp_path, first)]), Completion(second)]
    )

    assert done == set()
    assert statuses(database_conninfo, [first.id, second.id]) == {
        taken_over.id: "processing",
        ({first.id, second.id} - {taken_over.id}).pop(): "queued",
    }
    assert job_queue.complete(database, taken_over, [output_for(tmp_path, taken_over)])
    with psycopg.connect(database_conninfo) as conn:
        outputs = conn.execute("SELECT job_id FROM job_outputs").fetchall()
    assert outputs == [(taken_over.id,)]
    db_check_agrees(database, database_conninfo)


def test_completions_across_batches_in_one_transaction_leave_every_count_exact(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batches = [new_batch(database, tmp_path, 5, f"C{i}_COUNT", seed=10 * i) for i in range(3)]
    worker_liveness.register_worker(database, "w", 15)
    jobs = job_queue.claim_many(database, "w", 15)
    failing, released = jobs[3], jobs[7]
    assert job_queue.fail(database, failing, "bad pixels", retryable=False) == "failed"
    assert job_queue.release(database, released)

    finished = [job for job in jobs if job not in (failing, released)]
    assert job_queue.complete_many(database, [Completion(job) for job in finished]) == {
        job.id for job in finished
    }

    with database.connect() as connection:
        rows = {row.id: row for row in batch_queries.batches_by_ids(connection, batches)}
    assert sum(row.completed_count for row in rows.values()) == 13
    assert sum(row.failed_count for row in rows.values()) == 1
    assert sum(row.queued_count for row in rows.values()) == 1
    assert sum(row.processing_count for row in rows.values()) == 0
    db_check_agrees(database, database_conninfo)
