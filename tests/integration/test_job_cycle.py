"""A worker's cycle in one statement completes what it finished and claims what comes next.

Each part keeps its own promises as if it ran alone: a completion is fenced on its own lease
token, outputs are stored with it and its attempt closed; the claim takes the queue's order,
skips paused batches and claims nothing for a paused worker, and opens its attempts. The batch
counts the triggers keep stay exact although one trigger call sees both parts' rows.
"""

import threading
from pathlib import Path
from uuid import UUID

import psycopg

from batchdesk.storage import (
    batch_queries,
    blob_store,
    farm_controls,
    job_attempts,
    job_cycle,
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


def output_for(folder: Path, job: ClaimedJob) -> tuple[StoredOutput, Path]:
    path = make_png(folder / f"out-{job.id}.png", size=(16, 12), seed=job.id)
    return StoredOutput(f"out-{job.id}.png", blob_store.hash_file(path), "image/png", 16, 12), path


def healthy(database: Database) -> None:
    """What `batchdesk db check` checks: counts agree with the jobs, attempts with the runs."""
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
        assert job_attempts.unmatched_attempts(connection) == 0


def jobs_of(conninfo: str, ids: list[int]) -> dict[int, tuple[str, str | None, int]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT id, status, worker, attempts FROM jobs WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def test_cycles_move_several_batches_through_with_every_count_and_status_exact(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    high = new_batch(database, tmp_path, 4, "HI_HIGH")
    middle = new_batch(database, tmp_path, 5, "MI_MID", seed=10)
    low = new_batch(database, tmp_path, 3, "LO_LOW", seed=20)
    farm_controls.set_priority(database, [high], 90)
    farm_controls.set_priority(database, [low], 10)
    worker_liveness.register_worker(database, "w", 3)
    order = {high: 0, middle: 1, low: 2}

    claimed = job_queue.claim_many(database, "w", 3)
    seen: list[ClaimedJob] = list(claimed)
    cycles = 0
    while claimed:
        completions = [
            Completion(job, [output_for(tmp_path, job)] if job.id % 2 else [], log=f"log {job.id}")
            for job in claimed
        ]
        cycle = job_cycle.complete_and_claim(database, "w", completions, 3)
        cycles += 1
        assert cycle.completed == {job.id for job in claimed}
        # The claim's order: the highest priority first, then the oldest.
        ranks = [(order[job.batch_id], job.id) for job in cycle.claimed]
        assert ranks == sorted(ranks)
        assert all(order[job.batch_id] >= order[seen[-1].batch_id] for job in cycle.claimed)
        states = jobs_of(database_conninfo, [job.id for job in (*claimed, *cycle.claimed)])
        assert {states[job.id] for job in claimed} == {("completed", "w", 1)}
        assert {states[job.id] for job in cycle.claimed} <= {("processing", "w", 1)}
        healthy(database)  # after every cycle, not only at the end
        seen.extend(cycle.claimed)
        claimed = cycle.claimed

    assert cycles == 4  # 12 jobs, 3 a cycle
    assert len({job.id for job in seen}) == 12
    with database.connect() as connection:
        rows = {row.id: row for row in batch_queries.batches_by_ids(connection, order)}
    assert {batch: (row.status, row.completed_count) for batch, row in rows.items()} == {
        high: ("completed", 4),
        middle: ("completed", 5),
        low: ("completed", 3),
    }
    with psycopg.connect(database_conninfo) as conn:
        outputs = conn.execute("SELECT job_id FROM job_outputs ORDER BY job_id").fetchall()
        attempts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'completed' AND log = "
            "'log ' || job_id) FROM job_attempts"
        ).fetchone()
    assert outputs == [(job.id,) for job in sorted(seen, key=lambda j: j.id) if job.id % 2]
    assert attempts == (12, 12)
    healthy(database)


def test_a_cycle_is_one_statement_and_its_batches_are_counted_mid_flight(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    first = new_batch(database, tmp_path, 2, "FI_FIRST")
    second = new_batch(database, tmp_path, 2, "SE_SECOND", seed=10)
    farm_controls.set_priority(database, [first], 90)
    worker_liveness.register_worker(database, "w", 2)
    finished = job_queue.claim_many(database, "w", 2)
    assert {job.batch_id for job in finished} == {first}

    cycle = job_cycle.complete_and_claim(database, "w", [Completion(j) for j in finished], 2)

    assert {job.batch_id for job in cycle.claimed} == {second}
    with psycopg.connect(database_conninfo) as conn:
        writers = conn.execute(
            "SELECT DISTINCT xmin::text FROM jobs WHERE id = ANY(%s)",
            ([job.id for job in (*finished, *cycle.claimed)],),
        ).fetchall()
    assert len(writers) == 1  # the completions and the claims in one transaction
    with database.connect() as connection:
        rows = {row.id: row for row in batch_queries.batches_by_ids(connection, [first, second])}
    assert (rows[first].status, rows[first].completed_count) == ("completed", 2)
    assert (rows[second].status, rows[second].processing_count) == ("processing", 2)
    healthy(database)


def test_a_stale_worker_completes_nothing_of_a_job_taken_over_while_its_claims_still_work(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 2, "ZO_ZOMBIE")
    worker_liveness.register_worker(database, "zombie", 2)
    first, second = job_queue.claim_many(database, "zombie", 2)
    # The zombie is declared dead: both jobs go back; another worker takes one of them over.
    worker_liveness.unregister_worker(database, "zombie")
    assert worker_liveness.reap(database, 30.0, reaper="reaper") == worker_liveness.ReapResult(
        requeued=2, failed=0
    )
    worker_liveness.register_worker(database, "heir", 1)
    [taken_over] = job_queue.claim_many(database, "heir", 1)
    assert taken_over.id in (first.id, second.id)
    new_batch(database, tmp_path, 2, "NE_NEXT", seed=10)  # more work for the claims
    worker_liveness.register_worker(database, "zombie", 2)  # back, with its stale tokens

    cycle = job_cycle.complete_and_claim(
        database,
        "zombie",
        [Completion(first, [output_for(tmp_path, first)]), Completion(second, log="stale")],
        2,
    )

    assert cycle.completed == set()
    assert len(cycle.claimed) == 2
    assert taken_over.id not in {job.id for job in cycle.claimed}
    states = jobs_of(database_conninfo, [first.id, second.id, *(j.id for j in cycle.claimed)])
    assert states[taken_over.id] == ("processing", "heir", 2)
    assert {states[job.id][:2] for job in cycle.claimed} == {("processing", "zombie")}
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM job_outputs").fetchone() == (0,)
        open_attempts = conn.execute(
            "SELECT job_id, worker FROM job_attempts WHERE finished_at IS NULL ORDER BY job_id"
        ).fetchall()
    assert open_attempts == sorted(
        [(taken_over.id, "heir"), *((job.id, "zombie") for job in cycle.claimed)]
    )
    # The heir's lease is intact: its completion goes through.
    assert job_queue.complete(database, taken_over, [output_for(tmp_path, taken_over)])
    healthy(database)


def test_a_cycle_claims_nothing_for_a_paused_worker_or_from_a_paused_batch(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    running = new_batch(database, tmp_path, 2, "RU_RUN")
    held = new_batch(database, tmp_path, 2, "PA_PAUSED", seed=10)
    farm_controls.set_priority(database, [held], 99)
    farm_controls.pause(database, [held])
    worker_liveness.register_worker(database, "w", 2)
    [job] = job_queue.claim_many(database, "w", 1)
    assert job.batch_id == running

    workers.set_desired_state(database, "w", "paused")
    paused = job_cycle.complete_and_claim(database, "w", [Completion(job)], 2)
    assert paused.completed == {job.id}  # a paused worker still finishes its jobs
    assert paused.claimed == []

    workers.set_desired_state(database, "w", "running")
    [last] = job_queue.claim_many(database, "w", 1)
    resumed = job_cycle.complete_and_claim(database, "w", [Completion(last)], 2)
    assert resumed.completed == {last.id}
    assert resumed.claimed == []  # only the paused batch's jobs are left
    farm_controls.resume(database, [held])
    assert {j.batch_id for j in job_queue.claim_many(database, "w", 2)} == {held}
    healthy(database)


def test_racing_cycles_complete_every_job_exactly_once(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batches = [new_batch(database, tmp_path, 12, f"R{i}_RACE", seed=100 * i) for i in range(4)]
    completed: list[list[int]] = [[] for _ in range(4)]
    barrier = threading.Barrier(len(completed))

    def worker(index: int) -> None:
        name = f"w{index}"
        barrier.wait()
        claimed = job_queue.claim_many(database, name, 1 + index % 3)
        while claimed:
            cycle = job_cycle.complete_and_claim(
                database, name, [Completion(job) for job in claimed], 1 + index % 3
            )
            assert cycle.completed == {job.id for job in claimed}
            completed[index].extend(cycle.completed)
            claimed = cycle.claimed

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(completed))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    every = [job_id for ids in completed for job_id in ids]
    assert len(every) == len(set(every)) == 48
    with database.connect() as connection:
        rows = batch_queries.batches_by_ids(connection, batches)
    assert [(row.status, row.completed_count) for row in rows] == [("completed", 12)] * 4
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM job_attempts").fetchone() == (48,)
    healthy(database)
