"""Every attempt of every job: who ran it, when, how it ended, and what it said.

The claim opens an attempt and whatever ends it closes it (see `job_queue`), so a job's history
survives retries, crashed workers and cancels. Rows come back as frozen dataclasses, which may
cross threads (the window's job details read them).
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from batchdesk.storage.pool import Connection

# How an attempt ended; "running" while it is open.
OUTCOMES = ("running", "completed", "failed", "lost", "released", "cancelled")

_COLUMNS = (
    "job_id, number, worker, started_at, finished_at, coalesce(outcome, 'running'), error, "
    "log, ended_by, extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8"
)


@dataclass(frozen=True)
class AttemptRow:
    """One attempt of a job.

    `number` counts the job's attempts from 1 and never starts again (a retry's fresh attempts
    go on counting). `outcome` is running (still open), completed, failed, lost (its worker
    stopped responding; `ended_by` is the worker whose reaper noticed), released (its worker
    stopped cleanly and gave the job back untried) or cancelled (`ended_by`: who cancelled).
    `error` is the attempt's error, `log` what the job's tools and Pillow said during it, and
    `seconds` its duration (so far, while running).
    """

    job_id: int
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None
    log: str | None
    ended_by: str | None
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "worker": self.worker,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome,
            "error": self.error,
            "log": self.log,
            "ended_by": self.ended_by,
            "duration": round(self.seconds, 3),
        }


def _attempt(row: tuple[Any, ...]) -> AttemptRow:
    return AttemptRow(*row)


def job_history(connection: Connection, job_id: int) -> list[AttemptRow]:
    """Return one job's attempts, first to last."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM job_attempts WHERE job_id = %s ORDER BY number", (job_id,)
    ).fetchall()
    return [_attempt(row) for row in rows]


def histories(connection: Connection, job_ids: Collection[int]) -> dict[int, list[AttemptRow]]:
    """Return the attempts of each of `job_ids`, first to last (jobs never tried are left out)."""
    if not job_ids:
        return {}
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM job_attempts WHERE job_id = ANY(%s) ORDER BY job_id, number",
        (list(job_ids),),
    ).fetchall()
    found: dict[int, list[AttemptRow]] = defaultdict(list)
    for row in rows:
        attempt = _attempt(row)
        found[attempt.job_id].append(attempt)
    return dict(found)


def batch_histories(connection: Connection, batch_id: UUID) -> dict[int, list[AttemptRow]]:
    """Return the attempts of every job of a batch, by job id, first to last."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM job_attempts WHERE job_id IN "
        "(SELECT id FROM jobs WHERE batch_id = %s) ORDER BY job_id, number",
        (batch_id,),
    ).fetchall()
    found: dict[int, list[AttemptRow]] = defaultdict(list)
    for row in rows:
        attempt = _attempt(row)
        found[attempt.job_id].append(attempt)
    return dict(found)


def unmatched_attempts(connection: Connection) -> int:
    """Count the disagreements between jobs and their open attempts (0 when healthy).

    Every running job has exactly one open attempt, and no other job has one.
    """
    row = connection.execute(
        "SELECT (SELECT count(*) FROM jobs j WHERE j.status = 'processing' AND NOT EXISTS "
        "  (SELECT 1 FROM job_attempts a WHERE a.job_id = j.id AND a.finished_at IS NULL)) + "
        "(SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
        "  WHERE a.finished_at IS NULL AND j.status <> 'processing')"
    ).fetchone()
    return int(row[0]) if row else 0


def repair_attempts(connection: Connection) -> int:
    """Make the open attempts agree with the running jobs again; return how many were fixed.

    Only needed after the tables were edited by hand: an open attempt of a job that is not
    running is closed as lost, and a running job without one gets one.
    """
    closed = connection.execute(
        "UPDATE job_attempts a SET finished_at = now(), outcome = 'lost', "
        "error = 'Closed by batchdesk db repair: the job was not running.', "
        "ended_by = 'batchdesk db repair' "
        "FROM jobs j WHERE j.id = a.job_id AND a.finished_at IS NULL "
        "AND j.status <> 'processing'"
    ).rowcount
    opened = connection.execute(
        "WITH missing AS (SELECT id FROM jobs j WHERE status = 'processing' AND NOT EXISTS "
        "  (SELECT 1 FROM job_attempts a WHERE a.job_id = j.id AND a.finished_at IS NULL) "
        "  ORDER BY id FOR UPDATE), "
        # The number of the claim that is running, unless an attempt already has it.
        "counted AS (UPDATE jobs j SET last_attempt = CASE WHEN j.last_attempt > 0 "
        "  AND NOT EXISTS (SELECT 1 FROM job_attempts WHERE job_id = j.id "
        "  AND number = j.last_attempt) THEN j.last_attempt ELSE greatest(j.last_attempt, "
        "  (SELECT coalesce(max(number), 0) FROM job_attempts WHERE job_id = j.id)) + 1 END "
        "  FROM missing WHERE j.id = missing.id "
        "  RETURNING j.id, j.last_attempt, j.worker, j.started_at) "
        "INSERT INTO job_attempts (job_id, number, worker, started_at) "
        "SELECT id, last_attempt, coalesce(worker, ''), coalesce(started_at, now()) FROM counted"
    ).rowcount
    return closed + opened
