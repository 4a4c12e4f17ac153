"""The studio's workers as rows to watch and steer: who runs where, what they do, pause/resume.

Each worker (a window's thread pool or a `batchdesk worker`) keeps its row in `workers` up to
date at every heartbeat (`worker_liveness.heartbeat`), and reads `desired_state` there: pausing a
worker is writing that column, from any workstation. The change is announced on the
`batchdesk_workers` channel, so a worker that hears it obeys at once; one that does not, at its
next heartbeat. A worker that stops leaves the list; one that dies is removed by the reaper of
another worker. What they completed stays in the attempts (`job_attempts`), so "done today" and
"done this week" come from there.
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batchdesk.errors import NotFound
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection

CHANNEL = "batchdesk_workers"
# A worker not heard from for this long is not listed: it is dead, or cut off from the database
# (the runner's default liveness timeout).
LIVE_WITHIN_SECONDS = 30.0
DESIRED_STATES = ("running", "paused")


@dataclass(frozen=True)
class RunningJob:
    """A job a worker runs now."""

    job_id: int
    batch: str  # base directory name
    file_name: str
    started_at: datetime
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "batch": self.batch,
            "file_name": self.file_name,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class WorkerRow:
    """One live worker, as `batchdesk workers` and the window's Workers panel show it.

    `state` is what the worker last reported: running, paused (it finishes its running jobs and
    claims nothing new) or stopping. `desired_state` is what it has been asked; the two differ
    until the worker hears of the change. Done today and this week count the jobs it completed
    since the studio's midnight and since the studio's Monday (as for batch names).
    """

    id: str
    host: str
    pid: int
    threads: int
    kind: str  # window or headless
    state: str
    desired_state: str
    started_at: datetime
    heartbeat_at: datetime
    seconds_since_heartbeat: float
    done_today: int
    done_this_week: int
    running: tuple[RunningJob, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "threads": self.threads,
            "kind": self.kind,
            "state": self.state,
            "desired_state": self.desired_state,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "seconds_since_heartbeat": round(self.seconds_since_heartbeat, 1),
            "done_today": self.done_today,
            "done_this_week": self.done_this_week,
            "running": [job.as_json() for job in self.running],
        }


# The studio's midnight and the start of its week (Monday), as moments; then, per live worker,
# its completed attempts since each (index job_attempts_completed_idx).
_WORKERS = """
WITH zone AS (
    SELECT coalesce((SELECT value FROM studio_settings WHERE key = 'time_zone'),
                    current_setting('TimeZone')) AS name
), bounds AS (
    SELECT batchdesk_today()::timestamp AT TIME ZONE zone.name AS today,
           date_trunc('week', batchdesk_today()::timestamp) AT TIME ZONE zone.name AS week
    FROM zone
)
SELECT w.id, w.host, w.pid, w.threads, w.kind, w.state, w.desired_state, w.started_at,
       w.heartbeat_at, extract(epoch FROM now() - w.heartbeat_at)::float8,
       (SELECT count(*) FROM job_attempts a WHERE a.worker = w.id AND a.outcome = 'completed'
          AND a.finished_at >= bounds.today),
       (SELECT count(*) FROM job_attempts a WHERE a.worker = w.id AND a.outcome = 'completed'
          AND a.finished_at >= bounds.week)
FROM workers w, bounds
WHERE w.heartbeat_at >= now() - make_interval(secs => %s)
ORDER BY w.host, w.started_at, w.id
"""


def list_workers(
    connection: Connection, *, live_within: float = LIVE_WITHIN_SECONDS
) -> list[WorkerRow]:
    """Return every worker heard from in the last `live_within` seconds, by host."""
    rows = connection.execute(_WORKERS, (live_within,)).fetchall()
    running = _running_jobs(connection, [row[0] for row in rows])
    workers = []
    for row in rows:
        values: list[Any] = [*row, tuple(running.get(row[0], ()))]
        workers.append(WorkerRow(*values))
    return workers


def _running_jobs(
    connection: Connection, worker_ids: Collection[str]
) -> dict[str, list[RunningJob]]:
    if not worker_ids:
        return {}
    rows = connection.execute(
        "SELECT j.worker, j.id, b.base_directory_name, j.file_name, j.started_at, "
        "extract(epoch FROM now() - j.started_at)::float8 "
        "FROM jobs j JOIN batches b ON b.id = j.batch_id "
        "WHERE j.status = 'processing' AND j.worker = ANY(%s) ORDER BY j.started_at, j.id",
        (list(worker_ids),),
    ).fetchall()
    found: dict[str, list[RunningJob]] = defaultdict(list)
    for worker, *job in rows:
        found[worker].append(RunningJob(*job))
    return dict(found)


def silent_workers(connection: Connection, *, live_within: float = LIVE_WITHIN_SECONDS) -> int:
    """Count the workers still listed but not heard from in `live_within` seconds (dead ones
    that no reaper has removed yet)."""
    row = connection.execute(
        "SELECT count(*) FROM workers WHERE heartbeat_at < now() - make_interval(secs => %s)",
        (live_within,),
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class SteeredWorker:
    """A worker whose desired state was set, and what it was before."""

    id: str
    host: str
    state: str  # as last reported
    was: str  # the desired state before


def set_desired_state(
    database: Database,
    reference: str,
    desired_state: str,
    *,
    live_within: float = LIVE_WITHIN_SECONDS,
) -> list[SteeredWorker]:
    """Ask a worker, or every live worker of a host, to pause or to run again.

    `reference` is a worker id, or a host name (every live worker there). Raises NotFound when
    it names no live worker. Each worker obeys when it hears of it: at once where the
    announcement arrives, else at its next heartbeat.
    """
    if desired_state not in DESIRED_STATES:
        raise ValueError(f"a worker can be running or paused, not {desired_state!r}")
    text = reference.strip()
    if not text or "\x00" in text:  # no id or host is empty, and PostgreSQL text has no NUL
        raise NotFound(
            f"There is no live worker or host {reference!r} (batchdesk workers lists them)."
        )
    with database.begin() as connection:
        rows = connection.execute(
            "WITH chosen AS (SELECT id, desired_state AS was FROM workers "
            "  WHERE heartbeat_at >= now() - make_interval(secs => %(live)s) "
            "  AND (id = %(ref)s OR (host = %(ref)s AND NOT EXISTS "
            "    (SELECT 1 FROM workers WHERE id = %(ref)s))) "
            "  ORDER BY id FOR UPDATE) "
            "UPDATE workers w SET desired_state = %(desired)s FROM chosen "
            "WHERE w.id = chosen.id RETURNING w.id, w.host, w.state, chosen.was",
            {"live": live_within, "ref": text, "desired": desired_state},
        ).fetchall()
    if not rows:
        raise NotFound(
            f"There is no live worker or host {reference!r} (batchdesk workers lists them)."
        )
    return sorted((SteeredWorker(*row) for row in rows), key=lambda w: w.id)
