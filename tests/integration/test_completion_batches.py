"""Completions handed over together share one transaction, each still fenced on its lease."""

import threading
import time
from pathlib import Path

import psycopg

from batchdesk.jobs.completion_batches import CompletionBatches
from batchdesk.storage import batch_queries, blob_store, job_attempts, job_queue
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob, Completion, StoredOutput
from tests.factories import make_batch, make_png


def output_for(folder: Path, job: ClaimedJob) -> tuple[StoredOutput, Path]:
    path = make_png(folder / f"out-{job.id}.png", size=(16, 12), seed=job.id)
    return StoredOutput(f"out-{job.id}.png", blob_store.hash_file(path), "image/png", 16, 12), path


def hand_over_together(
    batches: CompletionBatches, completions: list[Completion]
) -> dict[int, bool]:
    """Hand each completion over from a thread of its own, all waiting before the batcher runs."""
    answers: dict[int, bool] = {}

    def job_thread(completion: Completion) -> None:
        answers[completion.job.id] = batches.complete(completion)

    threads = [threading.Thread(target=job_thread, args=(c,)) for c in completions]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while batches._waiting.qsize() < len(completions) and time.monotonic() < deadline:
        time.sleep(0.01)
    batches.start()
    for thread in threads:
        thread.join(timeout=30)
    batches.stop()
    return answers


def test_completions_waiting_together_commit_in_one_transaction_except_the_fenced_one(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    make_batch(database, tmp_path / "a", count=3, prefix="PL_DXB")
    other = make_batch(database, tmp_path / "b", count=1, prefix="KL_AMS", seed=5).batches[0]
    jobs = job_queue.claim_many(database, "w", 4)
    lost = next(job for job in jobs if job.batch_id == other.id)
    job_queue.cancel_batch(database, other.id, by="lead@studio")
    statements: list[int] = []

    def complete_many(batch: object) -> set[int]:
        statements.append(len(batch))  # type: ignore[arg-type]
        return job_queue.complete_many(database, batch)  # type: ignore[arg-type]

    batches = CompletionBatches(complete_many, lambda: len(jobs))
    answers = hand_over_together(
        batches, [Completion(job, [output_for(tmp_path, job)], log="ok") for job in jobs]
    )

    assert answers == {job.id: job is not lost for job in jobs}
    assert statements == [4]  # one call of complete_many for all four
    with psycopg.connect(database_conninfo) as conn:
        writers = conn.execute(
            "SELECT DISTINCT xmin::text FROM jobs WHERE status = 'completed'"
        ).fetchall()
        outputs = conn.execute("SELECT count(*) FROM job_outputs").fetchone()
    assert len(writers) == 1  # the three completed rows were written by one transaction
    assert outputs == (3,)
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
        assert job_attempts.unmatched_attempts(connection) == 0


def test_a_completion_alone_is_not_held_back_for_others(database: Database, tmp_path: Path) -> None:
    make_batch(database, tmp_path, count=1)
    [job] = job_queue.claim_many(database, "w", 1)
    # A window far longer than the test may wait: only one job runs, so nothing is awaited.
    batches = CompletionBatches(
        lambda batch: job_queue.complete_many(database, batch), lambda: 1, window=3600
    )
    batches.start()
    try:
        assert batches.complete(Completion(job)) is True
    finally:
        batches.stop()
