"""The runner completes finished jobs and claims the next ones in one statement (job_cycle)."""

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from batchdesk.jobs.runner import Runner
from batchdesk.storage import batch_queries, job_attempts, job_cycle
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.integration.test_runner import FAST, job_states, running, wait_for


def test_each_finished_job_is_completed_in_the_statement_that_claims_the_next(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path, count=4).batches[0]

    with running(database, replace(FAST, threads=1)) as (runner, events):
        assert runner.drained.wait(60)

    assert job_states(database_conninfo, batch.id) == [("completed", 1, None)] * 4
    with psycopg.connect(database_conninfo) as conn:
        rows = conn.execute(
            "SELECT started_at, finished_at FROM jobs WHERE batch_id = %s ORDER BY started_at",
            (batch.id,),
        ).fetchall()
    # now() is the transaction's start: a job completed by the statement that claimed the next
    # one finished at the very moment the next one started. The first claim is the dispatcher's.
    assert [rows[k][1] == rows[k + 1][0] for k in range(3)] == [True] * 3
    assert sorted(e.kind for e in events if e.kind != "started") == ["completed"] * 4
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
        assert job_attempts.unmatched_attempts(connection) == 0


def test_a_job_claimed_for_a_freed_slot_as_the_runner_stops_goes_back_to_the_queue_at_once(
    database: Database, database_conninfo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_batch(database, tmp_path, count=3).batches[0]
    runner = Runner(database, replace(FAST, threads=1))
    claimed_next = threading.Event()
    answer = threading.Event()
    real = job_cycle.complete_and_claim

    def complete_and_claim(*args: Any, **kwargs: Any) -> job_cycle.Cycle:
        cycle = real(*args, **kwargs)
        if cycle.claimed and not claimed_next.is_set():
            claimed_next.set()  # the next job is claimed; the dispatcher has not got it yet
            assert answer.wait(60)
        return cycle

    monkeypatch.setattr(job_cycle, "complete_and_claim", complete_and_claim)
    runner.start()
    assert claimed_next.wait(60)
    stopping = threading.Thread(target=runner.stop)
    stopping.start()
    # Only once the dispatcher has ended is the claimed job handed over: nothing will start it.
    wait_for(
        lambda: all(t.name != "batchdesk-dispatcher" for t in threading.enumerate()),
        "the dispatcher to end",
    )
    answer.set()
    stopping.join(60)

    assert not stopping.is_alive()
    # Not left processing under a worker that has left, for the reaper to find a while later.
    assert job_states(database_conninfo, batch.id) == [
        ("completed", 1, None),
        ("queued", 0, None),
        ("queued", 0, None),
    ]
    with database.connect() as connection:
        assert batch_queries.drifted_batches(connection) == []
        assert job_attempts.unmatched_attempts(connection) == 0
