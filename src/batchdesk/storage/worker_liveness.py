"""Workers' liveness: registration, the heartbeat, and the reaper of dead workers' jobs.

A worker proves it lives by its heartbeat; one whose heartbeat is older than the liveness
timeout is dead, and the reaper (one at a time across the studio) puts its jobs back in the
queue, closing their attempts as lost. Fencing (see job_queue) makes sure that a worker declared
dead that comes back changes nothing.
"""

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob, close_attempts, on_its_own, with_retry
from batchdesk.storage.pool import Connection, only_row

# Serialises the reaper across the studio: one worker reaps at a time.
REAPER_LOCK_KEY = 0x62617463_68646B03


def new_worker_id(name: str | None = None) -> str:
    """Return a worker id that names where it runs: `host:pid:random`."""
    return f"{name or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


WORKER_KINDS = ("window", "headless")


def register_worker(
    database: Database, worker_id: str, threads: int, *, kind: str = "headless"
) -> None:
    """Add this worker to the studio's list (or refresh its row); it starts running."""
    with database.begin() as connection:
        connection.execute(
            "INSERT INTO workers (id, host, pid, threads, kind) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), threads = excluded.threads",
            (worker_id, socket.gethostname(), os.getpid(), threads, kind),
        )


@dataclass(frozen=True)
class Beat:
    """What a heartbeat learnt."""

    was_known: bool  # False: the worker had been declared dead (its row was gone) and is back
    desired_state: str  # running or paused: what someone asked of this worker
    # The ids among the worker's running jobs still processing under their lease; the others
    # were cancelled or given away and must stop.
    held: frozenset[int] = frozenset()


# The worker's row and its running jobs in one statement: the row is written (or made again),
# and the jobs still processing under their lease are read in the same snapshot. A row made
# again (the reaper removed it) keeps the pause the worker is under: that request was only in
# the row the reaper removed.
_HEARTBEAT = """
WITH beat AS (
    INSERT INTO workers AS w (id, host, pid, threads, kind, desired_state, state)
    VALUES (%(id)s, %(host)s, %(pid)s, %(threads)s, %(kind)s,
        CASE WHEN %(paused)s THEN 'paused' ELSE 'running' END,
        CASE WHEN %(stopping)s THEN 'stopping' WHEN %(paused)s THEN 'paused' ELSE 'running' END)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), threads = excluded.threads,
        state = CASE WHEN %(stopping)s THEN 'stopping' ELSE w.desired_state END
    RETURNING w.desired_state, (w.xmax = 0) AS inserted
)
SELECT desired_state, inserted, ARRAY(
    SELECT id FROM jobs WHERE status = 'processing' AND (id, lease_token) IN
        (SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[])))
FROM beat
"""


def heartbeat(
    database: Database,
    worker_id: str,
    *,
    threads: int = 1,
    kind: str = "headless",
    stopping: bool = False,
    paused: bool = False,
    running: Sequence[ClaimedJob] = (),
) -> Beat:
    """Record that the worker lives and what it does; return what it has been asked to do.

    The worker's state becomes what it was asked (`paused` or `running`), which it obeys from
    this moment, or `stopping`. A worker whose row the reaper removed gets a new one, paused if
    it is `paused` now, else running.
    In the same statement, which of its `running` jobs it still holds (`Beat.held`).
    """
    row = on_its_own(
        database,
        lambda connection: only_row(
            connection.execute(
                _HEARTBEAT,
                {
                    "id": worker_id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "threads": threads,
                    "kind": kind,
                    "stopping": stopping,
                    "paused": paused,
                    "ids": [job.id for job in running],
                    "tokens": [job.lease_token for job in running],
                },
            )
        ),
    )
    desired_state, inserted, held = row
    return Beat(
        was_known=not inserted, desired_state=str(desired_state), held=frozenset(held or ())
    )


def unregister_worker(database: Database, worker_id: str) -> None:
    with database.begin() as connection:
        connection.execute("DELETE FROM workers WHERE id = %s", (worker_id,))


def still_held(database: Database, jobs: Sequence[ClaimedJob]) -> set[int]:
    """Return the ids among `jobs` that are still processing under their lease."""
    if not jobs:
        return set()
    with database.connect() as connection:
        rows = connection.execute(
            "SELECT id FROM jobs WHERE status = 'processing' AND (id, lease_token) IN "
            "(SELECT * FROM unnest(%s::bigint[], %s::uuid[]))",
            ([j.id for j in jobs], [j.lease_token for j in jobs]),
        ).fetchall()
    return {row[0] for row in rows}


@dataclass(frozen=True)
class ReapResult:
    requeued: int
    failed: int


def reap(
    database: Database,
    liveness_timeout: float,
    *,
    reaper: str | None = None,
    held: Sequence[int] = (),
) -> ReapResult | None:
    """Give back the running jobs of dead workers; None if another worker is reaping now.

    A worker is dead when its heartbeat is older than `liveness_timeout` seconds by the
    database's clock, or when its row is gone. Its jobs go back to the queue, or fail once
    they have used all their attempts. Each job's attempt is closed as `lost`, with the reaping
    worker (`reaper`) as the one that ended it and the reason as its error and the job's.

    The reaper's own strays go back the same way: jobs processing under its name, claimed more
    than `liveness_timeout` ago, that it does not hold (`held`: the ids it runs or waits to
    run). A claim whose answer was lost with the connection committed them to a worker that
    never heard of them; nothing else would ever give them back while that worker lives.
    """

    def work(connection: Connection) -> ReapResult | None:
        got = only_row(
            connection.execute("SELECT pg_try_advisory_xact_lock(%s)", (REAPER_LOCK_KEY,))
        )
        if not got[0]:
            return None
        connection.execute(
            "DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => %s)",
            (liveness_timeout,),
        )
        rows = connection.execute(
            "UPDATE jobs j SET "
            "status = CASE WHEN j.attempts < j.max_attempts THEN 'queued' ELSE 'failed' END, "
            "finished_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE now() END, "
            "last_error = CASE WHEN dead.worker = %(reaper)s THEN "
            "  'Worker ' || dead.worker || ' lost track of the job (the answer to its claim "
            "never arrived); the job went back to the queue.' "
            "WHEN j.attempts < j.max_attempts THEN "
            "  'Worker ' || coalesce(dead.worker, '?') || ' stopped responding; the job went "
            "back to the queue.' "
            "ELSE 'The workstation running it stopped responding ' || j.attempts || "
            "  ' times; check that machine, then retry the batch.' END, "
            "worker = NULL, lease_token = NULL, run_after = now() "
            "FROM (SELECT id, worker FROM jobs WHERE status = 'processing' "
            "  AND (NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.worker) "
            "    OR (jobs.worker = %(reaper)s AND jobs.id <> ALL(%(held)s::bigint[]) "
            "      AND jobs.started_at < now() - make_interval(secs => %(timeout)s))) "
            "  ORDER BY id FOR UPDATE SKIP LOCKED) dead "
            "WHERE j.id = dead.id "
            "RETURNING j.id, j.last_attempt, j.last_error, j.status",
            {"reaper": reaper, "held": list(held), "timeout": liveness_timeout},
        ).fetchall()
        close_attempts(
            connection,
            [(row[0], row[1], row[2]) for row in rows],
            outcome="lost",
            ended_by=reaper or "the reaper",
        )
        requeued = sum(1 for row in rows if row[3] == "queued")
        return ReapResult(requeued=requeued, failed=len(rows) - requeued)

    return with_retry(database, work)
