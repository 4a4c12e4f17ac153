"""The runner completes finished jobs and claims the next ones in one statement (job_cycle)."""

from dataclasses import replace
from pathlib import Path

import psycopg

from batchdesk.storage import batch_queries, job_attempts
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.integration.test_runner import FAST, job_states, running


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
