"""Farm controls in the database: priority, pause, single-job requeue, attempts, workers."""

import contextlib
import random
import socket
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdesk.domain.batch_query import BatchQuery
from batchdesk.domain.statuses import BatchStatus, JobCounts, derive_batch_status
from batchdesk.errors import InvalidRequest, KnownError, NotFound
from batchdesk.storage import (
    batch_queries,
    farm_controls,
    job_attempts,
    job_queue,
    migrations_runner,
    worker_liveness,
    workers,
)
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob
from tests.database_fixtures import TestServer
from tests.factories import make_batch


def new_batch(database: Database, folder: Path, count: int, prefix: str, seed: int = 0) -> UUID:
    return (
        make_batch(database, folder / prefix, count=count, prefix=prefix, seed=seed).batches[0].id
    )


def batch(database: Database, batch_id: UUID) -> batch_queries.BatchRow:
    with database.connect() as connection:
        return batch_queries.find_batch(connection, str(batch_id))


def claim_all(database: Database, worker: str) -> list[ClaimedJob]:
    claimed = []
    while (job := job_queue.claim(database, worker)) is not None:
        claimed.append(job)
    return claimed


def history(database: Database, job_id: int) -> list[tuple[int, str, str | None, str | None]]:
    """(number, outcome, error, ended_by) of each attempt of a job."""
    with database.connect() as connection:
        return [
            (a.number, a.outcome, a.error, a.ended_by)
            for a in job_attempts.job_history(connection, job_id)
        ]


def job_error(conninfo: str, job_id: int) -> str | None:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT last_error FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def copies_disagree(conninfo: str) -> list[tuple[Any, ...]]:
    """Jobs whose copies of their batch's priority and pause differ from the batch's."""
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT j.id, j.priority, j.paused, b.priority, b.paused_at FROM jobs j "
            "JOIN batches b ON b.id = j.batch_id "
            "WHERE (j.priority, j.paused) IS DISTINCT FROM (b.priority, b.paused_at IS NOT NULL)"
        ).fetchall()


def healthy(database: Database, conninfo: str) -> None:
    """Counts agree with the jobs, every running job has its one open attempt, copies agree."""
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
        assert job_attempts.unmatched_attempts(connection) == 0
    assert copies_disagree(conninfo) == []


# --- priority --------------------------------------------------------------------------------


def test_workers_take_the_highest_priority_first_then_the_oldest(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    low = new_batch(database, tmp_path, 2, "LO_LOW")
    high = new_batch(database, tmp_path, 2, "HI_HIGH", seed=10)
    middle_old = new_batch(database, tmp_path, 2, "MO_MIDOLD", seed=20)
    middle_new = new_batch(database, tmp_path, 2, "MN_MIDNEW", seed=30)
    farm_controls.set_priority(database, [low], 10)
    farm_controls.set_priority(database, [high], 90)
    farm_controls.set_priority(database, [middle_new, middle_old], 60)
    worker_liveness.register_worker(database, "w", 1)

    order = [job.batch_id for job in claim_all(database, "w")]

    assert order == [high, high, middle_old, middle_old, middle_new, middle_new, low, low]
    healthy(database, database_conninfo)


def test_raising_a_batchs_priority_puts_its_waiting_jobs_ahead_of_the_queue(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    first = new_batch(database, tmp_path, 3, "FI_FIRST")
    urgent = new_batch(database, tmp_path, 3, "UR_URGENT", seed=10)
    worker_liveness.register_worker(database, "w", 1)
    started = job_queue.claim(database, "w")
    assert started is not None
    assert started.batch_id == first

    [change] = farm_controls.set_priority(database, [urgent], 95)

    assert (change.was, change.priority) == (50, 95)
    assert batch(database, urgent).priority == 95
    order = [job.batch_id for job in claim_all(database, "w")]
    assert order == [urgent] * 3 + [first] * 2
    healthy(database, database_conninfo)


def test_a_new_batch_gets_the_studio_default_priority_and_old_ones_keep_theirs(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    before = new_batch(database, tmp_path, 1, "BE_BEFORE")
    with database.begin() as connection:
        assert farm_controls.default_priority(connection) == 50
        farm_controls.set_default_priority(connection, 70)

    after = new_batch(database, tmp_path, 2, "AF_AFTER", seed=5)

    assert (batch(database, before).priority, batch(database, after).priority) == (50, 70)
    healthy(database, database_conninfo)  # the jobs carry their batch's priority
    with database.begin() as connection:
        assert farm_controls.default_priority(connection) == 70
        with pytest.raises(InvalidRequest, match="from 0 to 100, not 101"):
            farm_controls.set_default_priority(connection, 101)


def test_a_priority_outside_0_to_100_is_refused_and_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 1, "PR_PRIO")
    for bad in (-1, 101):
        with pytest.raises(InvalidRequest, match=f"whole number from 0 to 100, not {bad}"):
            farm_controls.set_priority(database, [batch_id], bad)
    for text in ("high", "7.5", ""):
        with pytest.raises(InvalidRequest, match="whole number from 0 to 100"):
            farm_controls.parse_priority(text)
    assert farm_controls.parse_priority(" 0 ") == 0
    assert batch(database, batch_id).priority == 50


def test_a_priority_change_is_announced_to_every_listening_window(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 2, "AN_ANNOUNCE")
    with psycopg.connect(database_conninfo, autocommit=True) as listener:
        listener.execute("LISTEN batchdesk_batches")
        farm_controls.set_priority(database, [batch_id], 80)
        farm_controls.pause(database, [batch_id])
        payloads = [n.payload for n in listener.notifies(timeout=10, stop_after=2)]
    assert all(str(batch_id) in payload for payload in payloads)
    assert '"status" : "paused"' in payloads[-1]


# --- pause -----------------------------------------------------------------------------------


def test_a_paused_batch_keeps_its_queued_jobs_while_its_running_one_finishes(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    paused = new_batch(database, tmp_path, 3, "PA_PAUSED")
    other = new_batch(database, tmp_path, 1, "OT_OTHER", seed=10)
    worker_liveness.register_worker(database, "w", 1)
    running = job_queue.claim(database, "w")
    assert running is not None
    assert running.batch_id == paused

    [change] = farm_controls.pause(database, [paused])

    assert (change.already, change.status, change.queued, change.running) == (
        False,
        "paused",
        2,
        1,
    )
    assert [job.batch_id for job in claim_all(database, "w")] == [other]
    assert job_queue.complete(database, running, [])  # the running one finishes
    assert claim_all(database, "w") == []
    state = batch(database, paused)
    assert (state.status, state.queued_count, state.completed_count) == ("paused", 2, 1)
    assert state.paused_at is not None
    with database.connect() as connection:
        stats = batch_queries.batch_stats(connection)
        listed = batch_queries.list_batches(
            connection, BatchQuery(statuses=frozenset({BatchStatus.PAUSED}))
        )
    assert stats.paused == 1
    assert [b.id for b in listed] == [paused]

    [resumed] = farm_controls.resume(database, [paused])

    assert (resumed.already, resumed.status, resumed.queued) == (False, "processing", 2)
    assert [job.batch_id for job in claim_all(database, "w")] == [paused, paused]
    healthy(database, database_conninfo)


def test_a_paused_batch_whose_jobs_all_finish_shows_how_it_finished_and_stays_paused(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 1, "FI_FINISH")
    worker_liveness.register_worker(database, "w", 1)
    running = job_queue.claim(database, "w")
    assert running is not None
    farm_controls.pause(database, [batch_id])
    assert batch(database, batch_id).status == "paused"  # its running job has yet to finish

    assert job_queue.fail(database, running, "broken", retryable=False) == "failed"

    state = batch(database, batch_id)
    assert (state.status, state.finished_at is not None) == ("failed", True)
    assert state.paused_at is not None
    # A job put back waits for the resume: the batch is paused again, not running.
    job_queue.retry_batch(database, batch_id)
    assert batch(database, batch_id).status == "paused"
    assert claim_all(database, "w") == []
    farm_controls.resume(database, [batch_id])
    assert len(claim_all(database, "w")) == 1
    healthy(database, database_conninfo)


def test_pausing_a_finished_batch_is_refused_and_pauses_none_of_the_others(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    waiting = new_batch(database, tmp_path, 2, "WA_WAITING")
    finished = new_batch(database, tmp_path, 1, "DO_DONE", seed=10)
    job_queue.cancel_batch(database, finished)
    name = batch(database, finished).base_directory_name

    with pytest.raises(KnownError, match=f"{name} is cancelled: there is nothing left"):
        farm_controls.pause(database, [waiting, finished])

    assert batch(database, waiting).paused_at is None
    assert batch(database, waiting).status == "queued"
    healthy(database, database_conninfo)
    with pytest.raises(NotFound):
        farm_controls.pause(database, [UUID(int=7)])


@settings(max_examples=80, deadline=None)
@given(counts=st.tuples(*[st.integers(min_value=0, max_value=3)] * 5), paused=st.booleans())
def test_database_and_python_apply_the_same_status_rule_with_the_pause(
    readonly_conninfo: str, counts: tuple[int, int, int, int, int], paused: bool
) -> None:
    with psycopg.connect(readonly_conninfo) as conn:
        in_sql = conn.execute(
            "SELECT batch_status_for(%s, %s, %s, %s, %s, %s)", (*counts, paused)
        ).fetchone()
    assert in_sql is not None
    assert in_sql[0] == derive_batch_status(JobCounts(*counts), paused=paused).value


# --- requeueing single jobs ------------------------------------------------------------------


def test_a_completed_job_goes_back_to_the_queue_alone_with_fresh_attempts(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 2, "RQ_REQUEUE")
    worker_liveness.register_worker(database, "w", 1)
    first, second = claim_all(database, "w")
    assert job_queue.complete(database, first, [])
    assert job_queue.fail(database, second, "bad", retryable=False) == "failed"
    name = batch(database, batch_id).base_directory_name

    [requeued] = farm_controls.requeue_jobs(database, batch_id, name, [first.file_name])

    assert (requeued.id, requeued.was) == (first.id, "completed")
    state = batch(database, batch_id)
    assert (state.status, state.queued_count, state.failed_count) == ("processing", 1, 1)
    (again,) = claim_all(database, "w")
    assert (again.id, again.attempts, again.attempt) == (first.id, 1, 2)
    assert job_queue.complete(database, again, [])
    assert [h[:2] for h in history(database, first.id)] == [(1, "completed"), (2, "completed")]
    healthy(database, database_conninfo)


def test_requeueing_a_running_or_unknown_job_is_refused_and_changes_nothing(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 2, "RR_RUNNING")
    worker_liveness.register_worker(database, "w", 1)
    running = job_queue.claim(database, "w")
    assert running is not None
    name = batch(database, batch_id).base_directory_name
    with database.connect() as connection:
        waiting = next(
            j for j in batch_queries.list_jobs(connection, batch_id) if j.status == "queued"
        )

    with pytest.raises(KnownError, match=f"{running.file_name} of {name} is running"):
        farm_controls.requeue_jobs(database, batch_id, name, [running.file_name])
    with pytest.raises(KnownError, match="is already queued"):
        farm_controls.requeue_jobs(database, batch_id, name, [str(waiting.id)])
    with pytest.raises(NotFound, match=f"Batch {name} has no job 'nope.png'"):
        farm_controls.requeue_jobs(database, batch_id, name, ["nope.png"])

    assert job_queue.complete(database, running, [])  # still its worker's, untouched
    healthy(database, database_conninfo)


def test_jobs_of_several_batches_go_back_by_id_all_or_none(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    # The window's Run Again: the selection holds job ids, of any batches.
    first_batch = new_batch(database, tmp_path, 1, "RI_ONE")
    second_batch = new_batch(database, tmp_path, 2, "RI_TWO")
    worker_liveness.register_worker(database, "w", 1)
    one, two, three = claim_all(database, "w")
    assert job_queue.fail(database, one, "bad", retryable=False) == "failed"
    assert job_queue.complete(database, two, [])
    name = batch(database, second_batch).base_directory_name

    with pytest.raises(KnownError, match=f"{three.file_name} of {name} is running"):
        farm_controls.requeue_job_ids(database, [one.id, two.id, three.id])
    assert (batch(database, first_batch).failed_count, batch(database, second_batch).status) == (
        1,
        "processing",
    )
    with pytest.raises(NotFound, match="There is no job 999999"):
        farm_controls.requeue_job_ids(database, [one.id, 999999])

    requeued = farm_controls.requeue_job_ids(database, [two.id, one.id])
    assert [(job.id, job.was) for job in requeued] == [(one.id, "failed"), (two.id, "completed")]
    assert (batch(database, first_batch).status, batch(database, first_batch).queued_count) == (
        "queued",
        1,
    )
    assert job_queue.complete(database, three, [])
    healthy(database, database_conninfo)


# --- attempts --------------------------------------------------------------------------------


def test_every_attempt_is_kept_and_the_jobs_error_is_the_last_attempts(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 1, "AT_ATTEMPT")
    worker_liveness.register_worker(database, "w1", 1)
    worker_liveness.register_worker(database, "w2", 1)

    (one,) = claim_all(database, "w1")
    with database.connect() as connection:
        assert [a.outcome for a in job_attempts.job_history(connection, one.id)] == ["running"]
    assert job_queue.fail(database, one, "disk full", retryable=True, log="tool: warn") == "queued"
    with psycopg.connect(database_conninfo) as conn:  # the back-off, skipped
        conn.execute("UPDATE jobs SET run_after = now()")
    (two,) = claim_all(database, "w2")
    assert job_queue.release(database, two)  # a clean stop: this attempt does not count
    (three,) = claim_all(database, "w1")
    assert three.attempts == 2
    assert job_queue.fail(database, three, "truncated", retryable=False) == "failed"
    assert job_error(database_conninfo, one.id) == "truncated"
    job_queue.retry_batch(database, batch_id)
    (four,) = claim_all(database, "w2")
    job_queue.cancel_batch(database, batch_id, by="lead@desk")

    assert history(database, one.id) == [
        (1, "failed", "disk full", "w1"),
        (2, "released", None, "w2"),
        (3, "failed", "truncated", "w1"),
        (4, "cancelled", "Cancelled.", "lead@desk"),
    ]
    assert (one.attempt, two.attempt, three.attempt, four.attempt) == (1, 2, 3, 4)
    assert job_error(database_conninfo, one.id) == "Cancelled."
    with database.connect() as connection:
        [first, *rest] = job_attempts.job_history(connection, one.id)
        # What the window's job details read, for the jobs it shows (never tried: left out).
        assert job_attempts.histories(connection, [one.id, one.id + 1]) == {one.id: [first, *rest]}
    assert first.log == "tool: warn"
    assert first.finished_at is not None
    assert first.seconds >= 0
    assert first.as_json()["outcome"] == "failed"
    healthy(database, database_conninfo)


def test_the_reaper_closes_a_dead_workers_attempt_as_lost_and_names_itself(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 1, "RE_REAPED")
    worker_liveness.register_worker(database, "dead", 1)
    (lost,) = claim_all(database, "dead")
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE workers SET heartbeat_at = now() - interval '1 minute'")

    reaped = worker_liveness.reap(database, 30, reaper="healthy:1:abc")
    assert reaped == worker_liveness.ReapResult(1, 0)

    [attempt] = history(database, lost.id)
    assert attempt[:2] == (1, "lost")
    assert attempt[2] == "Worker dead stopped responding; the job went back to the queue."
    assert attempt[3] == "healthy:1:abc"
    assert job_error(database_conninfo, lost.id) == attempt[2]
    healthy(database, database_conninfo)


def test_db_repair_closes_an_open_attempt_of_a_job_edited_by_hand(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 2, "HA_HAND")
    worker_liveness.register_worker(database, "w", 1)
    running, other = claim_all(database, "w")
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE jobs SET status = 'completed' WHERE id = %s", (running.id,))
        conn.execute("DELETE FROM job_attempts WHERE job_id = %s", (other.id,))
    with database.connect() as connection:
        assert job_attempts.unmatched_attempts(connection) == 2

    with database.begin() as connection:
        assert job_attempts.repair_attempts(connection) == 2

    assert history(database, running.id)[0][1] == "lost"
    assert [h[1] for h in history(database, other.id)] == ["running"]
    assert job_queue.complete(database, other, [])  # its worker finishes it as if nothing were
    healthy(database, database_conninfo)


# --- workers ---------------------------------------------------------------------------------


def test_a_paused_worker_claims_nothing_and_learns_it_at_its_heartbeat(
    database: Database, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 2, "WP_WORKER")
    worker_liveness.register_worker(database, "host-a:1:aaa", 1)
    worker_liveness.register_worker(database, "host-a:2:bbb", 1)

    steered = workers.set_desired_state(database, "host-a:1:aaa", "paused")

    assert [(w.id, w.was) for w in steered] == [("host-a:1:aaa", "running")]
    assert job_queue.claim(database, "host-a:1:aaa") is None
    beat = worker_liveness.heartbeat(database, "host-a:1:aaa")
    assert (beat.was_known, beat.desired_state) == (True, "paused")
    assert job_queue.claim(database, "host-a:2:bbb") is not None
    with database.connect() as connection:
        states = {w.id: (w.state, w.desired_state) for w in workers.list_workers(connection)}
    assert states == {"host-a:1:aaa": ("paused", "paused"), "host-a:2:bbb": ("running", "running")}

    workers.set_desired_state(database, "host-a:1:aaa", "running")
    assert job_queue.claim(database, "host-a:1:aaa") is not None


def test_a_paused_worker_declared_dead_stays_paused_when_it_is_listed_again(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    new_batch(database, tmp_path, 1, "WP_BACK")
    worker_liveness.register_worker(database, "host-a:1:aaa", 1)
    workers.set_desired_state(database, "host-a:1:aaa", "paused")
    assert worker_liveness.heartbeat(database, "host-a:1:aaa").desired_state == "paused"
    with psycopg.connect(database_conninfo) as conn:  # the reaper removes a silent worker's row
        conn.execute("DELETE FROM workers WHERE id = 'host-a:1:aaa'")

    beat = worker_liveness.heartbeat(database, "host-a:1:aaa", paused=True)  # it was still paused

    assert (beat.was_known, beat.desired_state) == (False, "paused")
    assert job_queue.claim(database, "host-a:1:aaa") is None  # the lead's pause still holds
    with database.connect() as connection:
        [listed] = workers.list_workers(connection)
    assert (listed.state, listed.desired_state) == ("paused", "paused")


def test_a_host_name_steers_every_live_worker_there_and_unknown_names_are_refused(
    database: Database, database_conninfo: str
) -> None:
    here = socket.gethostname()
    for worker_id in (f"{here}:1:aaa", f"{here}:2:bbb"):
        worker_liveness.register_worker(database, worker_id, 2)
    worker_liveness.register_worker(database, f"{here}:3:ccc", 1)
    with psycopg.connect(database_conninfo) as conn:  # silent for a minute: not live
        conn.execute(
            "UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE id = %s",
            (f"{here}:3:ccc",),
        )

    steered = workers.set_desired_state(database, here, "paused")

    assert [w.id for w in steered] == [f"{here}:1:aaa", f"{here}:2:bbb"]
    for unknown in ("nowhere", f"{here}:3:ccc", "", "a\x00b"):
        with pytest.raises(NotFound, match="There is no live worker or host"):
            workers.set_desired_state(database, unknown, "paused")
    with database.connect() as connection:
        assert workers.silent_workers(connection) == 1


def test_the_workers_list_shows_what_each_runs_and_did_today_and_this_week(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_id = new_batch(database, tmp_path, 3, "WL_LIST")
    name = batch(database, batch_id).base_directory_name
    worker_liveness.register_worker(database, "busy:1:aaa", 2, kind="window")
    worker_liveness.register_worker(database, "idle:1:bbb", 1)
    first, second, running = claim_all(database, "busy:1:aaa")
    assert job_queue.complete(database, first, [])
    assert job_queue.complete(database, second, [])
    with psycopg.connect(database_conninfo) as conn:  # one of them finished last week
        conn.execute(
            "UPDATE job_attempts SET finished_at = finished_at - interval '8 days' "
            "WHERE job_id = %s",
            (second.id,),
        )

    with database.connect() as connection:
        busy, idle = workers.list_workers(connection)

    assert (busy.id, busy.kind, busy.threads, busy.state) == ("busy:1:aaa", "window", 2, "running")
    assert (busy.done_today, busy.done_this_week) == (1, 1)
    assert [(j.batch, j.file_name) for j in busy.running] == [(name, running.file_name)]
    assert busy.seconds_since_heartbeat >= 0
    assert (idle.id, idle.running, idle.done_today) == ("idle:1:bbb", (), 0)
    assert busy.as_json()["running"][0]["job_id"] == running.id


def test_worker_changes_are_announced_and_heartbeats_alone_are_not(
    database: Database, database_conninfo: str
) -> None:
    with psycopg.connect(database_conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {workers.CHANNEL}")
        worker_liveness.register_worker(database, "w:1:a", 1)
        worker_liveness.heartbeat(database, "w:1:a")
        worker_liveness.heartbeat(database, "w:1:a")
        workers.set_desired_state(database, "w:1:a", "paused")
        worker_liveness.heartbeat(database, "w:1:a")  # the worker obeys: its state changes
        worker_liveness.unregister_worker(database, "w:1:a")
        payloads = [n.payload for n in listener.notifies(timeout=10, stop_after=4)]
        payloads += [n.payload for n in listener.notifies(timeout=0.3)]

    assert [p.split('"op" : ')[1].split(",")[0] for p in payloads] == [
        '"insert"',
        '"update"',
        '"update"',
        '"delete"',
    ]
    assert '"desired_state" : "paused"' in payloads[1]
    assert '"state" : "paused"' in payloads[2]


# --- everything at once ----------------------------------------------------------------------


@pytest.mark.slow
def test_copies_counts_and_attempts_stay_true_while_leads_steer_and_workers_run(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch_ids = [
        new_batch(database, tmp_path, 12, p, seed=i * 20)
        for i, p in enumerate(("SA_ONE", "SB_TWO", "SC_THREE"))
    ]
    names = {b: batch(database, b).base_directory_name for b in batch_ids}
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(number: int) -> None:
        own = Database(database_conninfo, "worker", keep_idle=1)
        name = f"w:{number}:x"
        worker_liveness.register_worker(own, name, 1)
        rng = random.Random(number)
        try:
            while not stop.is_set():
                job = job_queue.claim(own, name)
                if job is None:
                    continue
                choice = rng.random()
                if choice < 0.6:
                    job_queue.complete(own, job, [])
                elif choice < 0.8:
                    job_queue.fail(own, job, "bad", retryable=rng.random() < 0.5)
                else:
                    job_queue.release(own, job)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    def lead(seed: int) -> None:
        own = Database(database_conninfo, "lead", keep_idle=1)
        rng = random.Random(seed)
        try:
            for _ in range(40):
                chosen = rng.sample(batch_ids, rng.randint(1, 2))
                action = rng.random()
                if action < 0.3:
                    farm_controls.set_priority(own, chosen, rng.randint(0, 100))
                elif action < 0.5:
                    with contextlib.suppress(KnownError):  # a finished one: nothing changed
                        farm_controls.pause(own, chosen)
                elif action < 0.7:
                    farm_controls.resume(own, chosen)
                elif action < 0.85:
                    job_queue.retry_batch(own, chosen[0])
                else:
                    with own.connect() as connection:
                        finished = [
                            j.file_name
                            for j in batch_queries.list_jobs(connection, chosen[0])
                            if j.status in ("completed", "failed")
                        ]
                    # One may be claimed meanwhile: then it is refused and nothing changes.
                    with contextlib.suppress(KnownError):
                        if finished:
                            farm_controls.requeue_jobs(
                                own, chosen[0], names[chosen[0]], finished[:2]
                            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    leads = [threading.Thread(target=lead, args=(n,)) for n in range(2)]
    for thread in threads + leads:
        thread.start()
    for thread in leads:
        thread.join(timeout=240)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    healthy(database, database_conninfo)
    with psycopg.connect(database_conninfo) as conn:
        numbers = conn.execute(
            "SELECT count(*) FROM jobs j WHERE j.last_attempt <> "
            "(SELECT coalesce(max(number), 0) FROM job_attempts a WHERE a.job_id = j.id)"
        ).fetchone()
    assert numbers == (0,)


# --- the upgrade -----------------------------------------------------------------------------


def test_upgrading_a_studio_with_jobs_running_gives_each_its_open_attempt(
    pg_server: TestServer, tmp_path: Path
) -> None:
    from alembic import command

    name = pg_server.create_database()
    try:
        database = pg_server.open(name)
        try:
            # Submitted by today's code, then the schema is taken back to revision 0008.
            batch_id = new_batch(database, tmp_path, 2, "UP_UPGRADE")
            config = migrations_runner._config()
            with migrations_runner.alembic_connection(database, begin=True) as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "0008")
            with psycopg.connect(pg_server.conninfo(name)) as conn:
                conn.execute(
                    "UPDATE jobs SET status = 'processing', attempts = 1, worker = 'old:1:a', "
                    "lease_token = gen_random_uuid(), started_at = now() "
                    "WHERE id = (SELECT min(id) FROM jobs)"
                )

            migrations_runner.upgrade(database)

            with database.connect() as connection:
                assert job_attempts.unmatched_attempts(connection) == 0
                jobs = batch_queries.list_jobs(connection, batch_id)
                [attempt] = job_attempts.job_history(connection, jobs[0].id)
            assert (attempt.number, attempt.worker, attempt.outcome) == (1, "old:1:a", "running")
            assert batch(database, batch_id).priority == 50
            worker_liveness.register_worker(database, "new:1:b", 1)
            (claimed,) = claim_all(database, "new:1:b")
            assert (claimed.id, claimed.attempt) == (jobs[1].id, 1)
            # Its worker is not in the new list of workers: the reaper gives the job back.
            reaped = worker_liveness.reap(database, 30, reaper="new:1:b")
            assert reaped == worker_liveness.ReapResult(1, 0)
            assert [(h[1], h[3]) for h in history(database, jobs[0].id)] == [("lost", "new:1:b")]
            healthy(database, pg_server.conninfo(name))
        finally:
            database.close()
    finally:
        pg_server.drop_database(name)
