"""The job queue in SQL: claim, finish, give back, and the batch-wide retry and cancel.

The workers' liveness (registration, heartbeat, the reaper) is in worker_liveness.

Lock order, everywhere: a statement locks the job rows it changes (in id order), then the job
triggers lock their batch rows (in id order). Nothing locks a batch row and then its jobs, so a
worker finishing a job and a lead cancelling its batch cannot deadlock.

Fencing: claiming a job gives it a fresh `lease_token`; finishing or giving it back names that
token. A worker that was declared dead and comes back holds a token nobody honours any more, so
it changes nothing.

Attempts: the claim opens a row in `job_attempts` and whatever ends the attempt (completion,
failure, release, the reaper, a cancel) closes it, each in the same statement as the job's own
change. A job has an open attempt exactly while it is processing.

Order: the highest priority first, then the oldest due job; jobs of paused batches, and workers
told to pause (`workers.desired_state`), claim nothing. See migration 0009.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import psycopg

from batchdesk.errors import DatabaseUnavailable
from batchdesk.storage import file_bytes
from batchdesk.storage.blob_store import FileDigest
from batchdesk.storage.database import Database, is_retryable
from batchdesk.storage.pool import Connection
from batchdesk.storage.submission import current_user

RETRY_BACKOFF_SECONDS = 10  # first retry after 10 s, then 20 s, 40 s...
_DEADLOCK_RETRIES = 5

T = TypeVar("T")


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds, with the token that proves it still does."""

    id: int
    batch_id: UUID
    lease_token: UUID
    file_name: str
    input_sha256: bytes
    input_size: int
    pipeline: str
    attempts: int
    max_attempts: int
    base_directory_name: str
    attempt: int  # this attempt's number in the job's history (job_attempts.number)


@dataclass(frozen=True)
class StoredOutput:
    name: str
    digest: FileDigest
    media_type: str
    width: int
    height: int


def with_retry(database: Database, work: Callable[[Connection], T]) -> T:
    """Run `work` in a transaction, running it again after a deadlock or a dead connection.

    A connection lost before the commit was asked for committed nothing, so the transaction
    is run once more on a fresh connection: the pool hands out connections without asking the
    server first (see pool), and one the server closed a moment ago fails its first statement.
    A connection lost during the commit is not retried: the commit may have happened.
    """
    reconnected = False
    attempt = 0
    while True:
        committing = False
        try:
            with database.begin() as connection:
                result = work(connection)
                committing = True  # leaving the block commits
            return result
        except DatabaseUnavailable:
            if committing or reconnected:
                raise
            reconnected = True
        except psycopg.Error as exc:
            attempt += 1
            if not is_retryable(exc) or attempt == _DEADLOCK_RETRIES:
                raise


def on_its_own(database: Database, work: Callable[[Connection], T]) -> T:
    """Run `work`, one statement, committed as it runs: one round trip instead of three.

    A transaction costs a BEGIN and a COMMIT besides its statement, each a round trip; a single
    statement in autocommit is as atomic on its own. Retried as `with_retry` does, except that
    a connection lost while the statement ran may have committed it: run again, a claim takes
    other jobs (the first ones wait for this worker's restart, as after a lost COMMIT) and a
    fenced completion finds its job no longer processing and reports it as not done.
    """
    reconnected = False
    attempt = 0
    while True:
        try:
            with database.connect() as connection:
                connection.autocommit = True  # the pool sets it back when the block ends
                return work(connection)
        except DatabaseUnavailable:
            if reconnected:
                raise
            reconnected = True
        except psycopg.Error as exc:
            attempt += 1
            if not is_retryable(exc) or attempt == _DEADLOCK_RETRIES:
                raise


# The next `limit` jobs: queued, due and not paused, from the claim's index (jobs_claim_idx) in
# its own order, skipping those another claim has locked; nothing for a worker told to pause.
# The attempts are opened in the same statement, each numbered on the job row this statement
# has locked (never a number taken already). CTEs, shared with job_cycle's statement; `claimed`
# returns CLAIMED_COLUMNS and the claim's order (priority, run_after, id).
# The picked ids are matched as an array (`= ANY`), not joined: a connection's cached generic
# plan, which cannot see `limit`, guesses a tenth of the table for `picked` and then joined it
# by reading every job row; matched as an array, the primary key is used whatever the guess.
CLAIM_CTES = """
picked AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE status = 'queued' AND NOT paused AND run_after <= now()
      AND NOT EXISTS (SELECT 1 FROM workers
                      WHERE id = %(worker)s AND desired_state = 'paused')
    ORDER BY priority DESC, run_after, id
    FOR UPDATE SKIP LOCKED LIMIT %(limit)s
), claimed AS (
    UPDATE jobs j SET status = 'processing', worker = %(worker)s,
        lease_token = gen_random_uuid(), attempts = j.attempts + 1,
        last_attempt = j.last_attempt + 1,
        started_at = now(), heartbeat_at = now(), finished_at = NULL
    FROM batches b
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND b.id = j.batch_id
    RETURNING j.id, j.batch_id, j.lease_token, j.file_name, j.input_sha256, j.input_size,
        j.pipeline, j.attempts, j.max_attempts, b.base_directory_name, j.last_attempt,
        j.started_at, j.priority, j.run_after
), opened AS (
    INSERT INTO job_attempts (job_id, number, worker, started_at)
    SELECT id, last_attempt, %(worker)s, started_at FROM claimed
)
"""
CLAIMED_COLUMNS = (
    "id, batch_id, lease_token, file_name, input_sha256, input_size, pipeline, attempts, "
    "max_attempts, base_directory_name, last_attempt"
)
_CLAIM = f"""
WITH {CLAIM_CTES}
SELECT {CLAIMED_COLUMNS} FROM claimed ORDER BY priority DESC, run_after, id
"""


def claimed_job(row: Sequence[Any]) -> ClaimedJob:
    """The job a claim returned, from its row of CLAIMED_COLUMNS."""
    values = list(row)
    values[4] = bytes(values[4])
    return ClaimedJob(*values)


def claim_many(database: Database, worker_id: str, limit: int) -> list[ClaimedJob]:
    """Take up to `limit` jobs to run, in the order they should start, in one statement.

    Many claimers never get the same job. The order is the queued, due jobs of the highest
    priority first, then the oldest; jobs of paused batches wait, and a worker told to pause
    gets none.
    """
    if limit < 1:
        return []
    rows = on_its_own(
        database,
        lambda connection: connection.execute(
            _CLAIM, {"worker": worker_id, "limit": limit}
        ).fetchall(),
    )
    return [claimed_job(row) for row in rows]


def claim(database: Database, worker_id: str) -> ClaimedJob | None:
    """Take the next job to run, or None (see `claim_many`)."""
    jobs = claim_many(database, worker_id, 1)
    return jobs[0] if jobs else None


# Closes the attempt of the job a worker's own statement ended, in that statement: the CTE
# `ended` returns the job's (id, error). The attempt was opened by the worker's own claim,
# committed before, so the statement sees it; while the worker holds the job's lease, the
# job's open attempt is that one.
_CLOSE_OWN_ATTEMPT = """
closed AS (
    UPDATE job_attempts a SET finished_at = now(), outcome = %(outcome)s, error = ended.error,
        log = %(log)s, ended_by = a.worker
    FROM ended WHERE a.job_id = ended.id AND a.finished_at IS NULL
)
"""


def close_attempts(
    connection: Connection,
    ended: Sequence[tuple[int, int, str | None]],
    *,
    outcome: str,
    ended_by: str,
) -> None:
    """Close the attempts (job id, number, error) that someone else's statement ended.

    A statement of its own, after the one that locked the jobs: a claim that committed while
    that one waited for a job's lock is seen by this one, its attempt with it.
    """
    if not ended:
        return
    connection.execute(
        "UPDATE job_attempts a SET finished_at = now(), outcome = %s, error = e.error, "
        "ended_by = %s FROM unnest(%s::bigint[], %s::integer[], %s::text[]) AS e(id, n, error) "
        "WHERE a.job_id = e.id AND a.number = e.n AND a.finished_at IS NULL",
        (
            outcome,
            ended_by,
            [row[0] for row in ended],
            [row[1] for row in ended],
            [row[2] for row in ended],
        ),
    )


@dataclass(frozen=True)
class Completion:
    """A job a worker finished: its outputs (each with its file's path) and its attempt's log."""

    job: ClaimedJob
    outputs: Sequence[tuple[StoredOutput, Any]] = ()
    log: str | None = None


# Completes the jobs still held under their lease, closes their attempts with their logs and
# stores their outputs: a job fenced off (cancelled, reaped, taken over) is not completed and
# gets no outputs, while the others do. Rows are given in id order, the usual lock order; the
# counting triggers then update each batch once for all its jobs. CTEs, shared with job_cycle's
# statement; `ended` returns the ids completed.
COMPLETE_CTES = """
done AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(logs)s::text[])
        AS d(id, token, log)
), ended AS (
    UPDATE jobs j SET status = 'completed', finished_at = now(), last_error = NULL,
        lease_token = NULL
    FROM done WHERE j.id = done.id AND j.lease_token = done.token AND j.status = 'processing'
    RETURNING j.id, done.log
), closed AS (
    UPDATE job_attempts a SET finished_at = now(), outcome = 'completed', error = NULL,
        log = ended.log, ended_by = a.worker
    FROM ended WHERE a.job_id = ended.id AND a.finished_at IS NULL
), stored AS (
    INSERT INTO job_outputs (job_id, name, sha256, size, media_type, width, height)
    SELECT o.* FROM unnest(%(out_jobs)s::bigint[], %(names)s::text[], %(hashes)s::bytea[],
        %(sizes)s::bigint[], %(types)s::text[], %(widths)s::integer[], %(heights)s::integer[])
        AS o(job_id, name, sha256, size, media_type, width, height)
    WHERE o.job_id IN (SELECT id FROM ended)
)
"""
_COMPLETE = f"WITH {COMPLETE_CTES} SELECT id FROM ended"


def completing(
    database: Database,
    completions: Sequence[Completion],
    statement: Callable[[Connection, dict[str, Any]], T],
) -> T:
    """Run `statement` with COMPLETE_CTES' parameters for `completions` (in id order).

    The output files are written first (held against deletion until the commit), so the job
    and batch rows are locked only by the final statement. Without outputs, no transaction is
    needed: the statement runs on its own.
    """
    ordered = sorted(completions, key=lambda c: c.job.id)
    outputs = [(c.job.id, out) for c in ordered for out, _ in c.outputs]
    params: dict[str, Any] = {
        "ids": [c.job.id for c in ordered],
        "tokens": [c.job.lease_token for c in ordered],
        "logs": [c.log for c in ordered],
        "out_jobs": [job_id for job_id, _ in outputs],
        "names": [o.name for _, o in outputs],
        "hashes": [o.digest.sha256 for _, o in outputs],
        "sizes": [o.digest.size for _, o in outputs],
        "types": [o.media_type for _, o in outputs],
        "widths": [o.width for _, o in outputs],
        "heights": [o.height for _, o in outputs],
    }
    if not outputs:
        return on_its_own(database, lambda connection: statement(connection, params))

    def work(connection: Connection) -> T:
        files = [(path, out.digest) for c in ordered for out, path in c.outputs]
        file_bytes.store_in_transaction(connection, files, database.share_paths)
        return statement(connection, params)

    return with_retry(database, work)


def complete_many(database: Database, completions: Sequence[Completion]) -> set[int]:
    """Complete several jobs in one statement; return the ids completed (the others were fenced).

    Each job is completed only while it is still this worker's under its lease token, and its
    outputs are stored with its completion (see `completing`). A fenced job's files stay unused
    until `batchdesk db gc` removes them.
    """
    if not completions:
        return set()
    return completing(
        database,
        completions,
        lambda connection, params: {
            row[0] for row in connection.execute(_COMPLETE, params).fetchall()
        },
    )


def complete(
    database: Database,
    job: ClaimedJob,
    outputs: Sequence[tuple[StoredOutput, Any]],
    *,
    log: str | None = None,
) -> bool:
    """Store the outputs and mark the job completed, in one transaction; False if fenced off.

    `outputs` pairs each output's description with its file path. `log` is kept with the
    attempt (what the job's tools and Pillow said). See `complete_many`.
    """
    return job.id in complete_many(database, [Completion(job, outputs, log)])


def fail(
    database: Database,
    job: ClaimedJob,
    message: str,
    *,
    retryable: bool,
    log: str | None = None,
) -> str | None:
    """Record a failure: back to the queue with a delay if worth retrying, else failed.

    The attempt is closed as failed with `message` (the job's error) and `log`. Returns the
    job's new status, or None if the job was no longer this worker's.
    """
    delay = RETRY_BACKOFF_SECONDS * 2 ** max(job.attempts - 1, 0)

    def work(connection: Connection) -> str | None:
        row = connection.execute(
            "WITH ended AS ("
            "  UPDATE jobs SET "
            "  status = CASE WHEN %(retry)s AND attempts < max_attempts "
            "    THEN 'queued' ELSE 'failed' END, "
            "  run_after = now() + make_interval(secs => %(delay)s), "
            "  finished_at = CASE WHEN %(retry)s AND attempts < max_attempts "
            "    THEN NULL ELSE now() END, "
            "  last_error = %(message)s, lease_token = NULL "
            "  WHERE id = %(id)s AND lease_token = %(token)s AND status = 'processing' "
            "  RETURNING id, last_error AS error, status), "
            + _CLOSE_OWN_ATTEMPT
            + "SELECT status FROM ended",
            {
                "retry": retryable,
                "delay": delay,
                "message": message,
                "id": job.id,
                "token": job.lease_token,
                "outcome": "failed",
                "log": log,
            },
        ).fetchone()
        return None if row is None else str(row[0])

    return with_retry(database, work)


def release(database: Database, job: ClaimedJob, *, log: str | None = None) -> bool:
    """Give a job back to the queue untried (a clean stop): its attempt does not count.

    The attempt stays in the history, closed as released.
    """

    def work(connection: Connection) -> bool:
        row = connection.execute(
            "WITH ended AS ("
            "  UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), "
            "  worker = NULL, lease_token = NULL, started_at = NULL, run_after = now(), "
            "  last_error = NULL "
            "  WHERE id = %(id)s AND lease_token = %(token)s AND status = 'processing' "
            "  RETURNING id, NULL::text AS error), " + _CLOSE_OWN_ATTEMPT + "SELECT id FROM ended",
            {
                "id": job.id,
                "token": job.lease_token,
                "outcome": "released",
                "log": log,
            },
        ).fetchone()
        return row is not None

    return with_retry(database, work)


def retry_batch(database: Database, batch_id: UUID) -> int:
    """Put a batch's failed jobs back in the queue with fresh attempts; return how many.

    Their earlier attempts stay in the history.
    """

    def work(connection: Connection) -> int:
        rows = connection.execute(
            "UPDATE jobs SET status = 'queued', attempts = 0, last_error = NULL, "
            "run_after = now(), finished_at = NULL, worker = NULL, lease_token = NULL "
            "WHERE id IN (SELECT id FROM jobs WHERE batch_id = %s AND status = 'failed' "
            "  ORDER BY id FOR UPDATE) RETURNING id",
            (batch_id,),
        ).fetchall()
        return len(rows)

    return with_retry(database, work)


@dataclass(frozen=True)
class CancelResult:
    queued: int  # cancelled before they started
    running: int  # stopped at their next step boundary


def cancel_batch(database: Database, batch_id: UUID, *, by: str | None = None) -> CancelResult:
    """Cancel a batch's unfinished jobs; their workers notice and stop at the next step.

    The attempts of the running ones are closed as cancelled, ended by `by` (who cancelled).
    """

    def work(connection: Connection) -> CancelResult:
        rows = connection.execute(
            "WITH chosen AS (SELECT id, status AS was FROM jobs WHERE batch_id = %s "
            "  AND status IN ('queued', 'processing') ORDER BY id FOR UPDATE) "
            "UPDATE jobs j SET status = 'cancelled', finished_at = now(), lease_token = NULL, "
            "last_error = 'Cancelled.' FROM chosen WHERE j.id = chosen.id "
            "RETURNING chosen.was, j.id, j.last_attempt, j.last_error",
            (batch_id,),
        ).fetchall()
        close_attempts(
            connection,
            [(row[1], row[2], row[3]) for row in rows if row[0] == "processing"],
            outcome="cancelled",
            ended_by=by or current_user(),
        )
        running = sum(1 for row in rows if row[0] == "processing")
        return CancelResult(queued=len(rows) - running, running=running)

    return with_retry(database, work)


def job_counts(database: Database) -> dict[str, int]:
    """Return how many jobs are in each status, studio-wide; queued jobs of paused batches
    count as `paused` (no worker may take them), not as `queued`."""
    with database.connect() as connection:
        rows = connection.execute(
            "SELECT CASE WHEN status = 'queued' AND paused THEN 'paused' ELSE status END, "
            "count(*) FROM jobs GROUP BY 1"
        ).fetchall()
    return {status: int(count) for status, count in rows}
