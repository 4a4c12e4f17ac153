"""Steering batches: priority, pause and resume, and putting single jobs back in the queue.

Every change here is a batch change, so the batch trigger announces it on `batchdesk_batches`
and every open window hears of it. A batch's priority and pause are copied onto each of its
jobs (the claim reads them from one index; migration 0009): each statement here writes every
job of the batches it changes, in id order, before the batch rows, the lock order of
`job_queue`. Writing every job, rather than those whose copy differs, is what keeps the copies
exact when two people change one batch at once: the second waits for the first's job locks.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from batchdesk.errors import InvalidRequest, KnownError, NotFound
from batchdesk.storage import blob_store
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import with_retry
from batchdesk.storage.pool import Connection, only_row

MIN_PRIORITY = 0
MAX_PRIORITY = 100
DEFAULT_PRIORITY = 50  # when the studio has not chosen one
FINISHED = ("completed", "failed", "cancelled")


def check_priority(value: int) -> int:
    """Return `value` if it is a priority (a whole number from 0 to 100), else raise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (MIN_PRIORITY <= value <= MAX_PRIORITY)
    ):
        raise InvalidRequest(
            f"A priority is a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, not {value!r}."
        )
    return value


def parse_priority(text: str) -> int:
    """Return the priority written as `text` ("80"), or raise InvalidRequest with the range."""
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"A priority is a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, not {text!r}."
        ) from None
    return check_priority(value)


# The job columns that copy their batch's farm state, and the SQL that sets each.
_JOB_COPIES = {"priority": "priority = %s", "paused": "paused = %s"}


def _write_jobs(
    connection: Connection, batch_ids: Sequence[UUID], column: str, value: int | bool
) -> None:
    """Set a copied column on every job of the batches, locking them in id order."""
    connection.execute(
        f"UPDATE jobs SET {_JOB_COPIES[column]} WHERE id IN (SELECT id FROM jobs "
        "WHERE batch_id = ANY(%s) ORDER BY id FOR UPDATE)",
        (value, list(batch_ids)),
    )


@dataclass(frozen=True)
class PriorityChange:
    id: UUID
    base_directory_name: str
    was: int
    priority: int


def set_priority(
    database: Database, batch_ids: Sequence[UUID], priority: int
) -> list[PriorityChange]:
    """Give batches a priority (0-100), all in one transaction; return each change."""
    check_priority(priority)
    ids = sorted(set(batch_ids))

    def work(connection: Connection) -> list[PriorityChange]:
        _write_jobs(connection, ids, "priority", priority)
        rows = connection.execute(
            "WITH chosen AS (SELECT id, priority AS was FROM batches WHERE id = ANY(%s) "
            "  ORDER BY id FOR UPDATE) "
            "UPDATE batches b SET priority = %s FROM chosen WHERE b.id = chosen.id "
            "RETURNING b.id, b.base_directory_name, chosen.was, b.priority",
            (ids, priority),
        ).fetchall()
        _require_all(ids, rows)
        return sorted((PriorityChange(*row) for row in rows), key=lambda c: c.base_directory_name)

    return with_retry(database, work)


def _require_all(ids: Sequence[UUID], rows: Sequence[tuple[object, ...]]) -> None:
    missing = set(ids) - {row[0] for row in rows}
    if missing:
        raise NotFound(
            f"There is no batch {str(min(missing))!r}; it may have been deleted meanwhile."
        )


@dataclass(frozen=True)
class PauseChange:
    """A batch paused or resumed: whether it already was, and what waits or runs now."""

    id: UUID
    base_directory_name: str
    already: bool  # it was already paused (pause) or not paused (resume)
    status: str
    queued: int  # jobs waiting for the resume (pause), or free to run (resume)
    running: int  # jobs running now, which finish either way


def pause(database: Database, batch_ids: Sequence[UUID]) -> list[PauseChange]:
    """Pause batches: workers take none of their queued jobs; running ones finish.

    All or nothing: a batch that has finished (completed, failed, cancelled) cannot be paused,
    and then none is (KnownError naming it).
    """
    return _set_paused(database, batch_ids, paused=True)


def resume(database: Database, batch_ids: Sequence[UUID]) -> list[PauseChange]:
    """Let paused batches' queued jobs run again (also a finished batch that was paused)."""
    return _set_paused(database, batch_ids, paused=False)


def _set_paused(
    database: Database, batch_ids: Sequence[UUID], *, paused: bool
) -> list[PauseChange]:
    ids = sorted(set(batch_ids))

    def work(connection: Connection) -> list[PauseChange]:
        _write_jobs(connection, ids, "paused", paused)
        # With every job locked, no status can change under us: the check below is exact.
        before = connection.execute(
            "SELECT id, base_directory_name, status, paused_at IS NOT NULL FROM batches "
            "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (ids,),
        ).fetchall()
        _require_all(ids, before)
        if paused:
            finished = [row for row in before if row[2] in FINISHED]
            if finished:
                _, name, status, _ = finished[0]
                raise KnownError(f"{name} is {status}: there is nothing left in it to pause.")
        rows = connection.execute(
            "UPDATE batches SET paused_at = CASE WHEN %(paused)s "
            "  THEN coalesce(paused_at, now()) END "
            "WHERE id = ANY(%(ids)s) "
            "RETURNING id, base_directory_name, status, queued_count, processing_count",
            {"paused": paused, "ids": ids},
        ).fetchall()
        already = {row[0]: row[3] == paused for row in before}
        return sorted(
            (PauseChange(row[0], row[1], already[row[0]], row[2], row[3], row[4]) for row in rows),
            key=lambda change: change.base_directory_name,
        )

    return with_retry(database, work)


@dataclass(frozen=True)
class RequeuedJob:
    id: int
    file_name: str
    was: str  # failed, completed or cancelled


def requeue_jobs(
    database: Database, batch_id: UUID, batch_name: str, references: Sequence[str]
) -> list[RequeuedJob]:
    """Put finished jobs of a batch back in the queue with fresh attempts, all or none.

    Each reference is a job's file name or id. A job still queued or running is refused (a
    KnownError naming it). The jobs' outputs go (they are made again); their history stays.
    """

    def work(connection: Connection) -> list[RequeuedJob]:
        ids = sorted({_find_job_id(connection, batch_id, batch_name, ref) for ref in references})
        return _requeue(connection, ids)

    return with_retry(database, work)


def requeue_job_ids(database: Database, job_ids: Sequence[int]) -> list[RequeuedJob]:
    """Put finished jobs back in the queue by id, of any batches, all or none (as requeue_jobs).

    For the window, whose selection holds job ids: a job deleted meanwhile is refused with
    NotFound, a job queued or running with a KnownError naming it and its batch.
    """
    ids = sorted(set(job_ids))

    def work(connection: Connection) -> list[RequeuedJob]:
        return _requeue(connection, ids)

    return with_retry(database, work)


def _requeue(connection: Connection, ids: list[int]) -> list[RequeuedJob]:
    locked = connection.execute(
        "SELECT j.id, j.file_name, j.status, b.base_directory_name FROM jobs j "
        "JOIN batches b ON b.id = j.batch_id WHERE j.id = ANY(%s) ORDER BY j.id FOR UPDATE OF j",
        (ids,),
    ).fetchall()
    if len(locked) != len(ids):
        missing = min(set(ids) - {row[0] for row in locked})
        raise NotFound(f"There is no job {missing}; its batch may have been deleted meanwhile.")
    for _job_id, file_name, status, batch_name in locked:
        if status in ("queued", "processing"):
            state = "running" if status == "processing" else "already queued"
            raise KnownError(
                f"{file_name} of {batch_name} is {state}: only a finished job (failed, "
                "completed or cancelled) can be queued again."
            )
    outputs = connection.execute(
        "DELETE FROM job_outputs WHERE job_id = ANY(%s) RETURNING sha256", (ids,)
    ).fetchall()
    connection.execute(
        "UPDATE jobs SET status = 'queued', attempts = 0, last_error = NULL, "
        "run_after = now(), started_at = NULL, finished_at = NULL, worker = NULL, "
        "lease_token = NULL WHERE id = ANY(%s)",
        (ids,),
    )
    blob_store.delete_unreferenced(connection, [bytes(row[0]) for row in outputs])
    return [RequeuedJob(*row[:3]) for row in locked]


def _find_job_id(connection: Connection, batch_id: UUID, batch_name: str, reference: str) -> int:
    """Return the id of the batch's job named by its file name or its id."""
    text = reference.strip()
    if "\x00" in text:  # PostgreSQL text cannot hold it, and no file name does
        raise NotFound(f"Batch {batch_name} has no job {reference!r}.")
    rows = connection.execute(
        "SELECT id FROM jobs WHERE batch_id = %s AND file_name = %s ORDER BY position",
        (batch_id, text),
    ).fetchall()
    if not rows and text.isdigit() and len(text) <= 18:
        rows = connection.execute(
            "SELECT id FROM jobs WHERE batch_id = %s AND id = %s", (batch_id, int(text))
        ).fetchall()
    if not rows:
        raise NotFound(f"Batch {batch_name} has no job {reference!r} (give its file name or id).")
    if len(rows) > 1:
        ids = ", ".join(str(row[0]) for row in rows)
        raise InvalidRequest(
            f"{len(rows)} jobs in {batch_name} are named {text!r} (ids {ids}); "
            "give the id of the one you want."
        )
    return int(rows[0][0])


def default_priority(connection: Connection) -> int:
    """The priority new batches get: the studio's choice, else 50."""
    return int(only_row(connection.execute("SELECT batchdesk_default_priority()"))[0])


def set_default_priority(connection: Connection, priority: int | None) -> None:
    """Choose the priority new batches get; None goes back to 50. Batches made before keep
    theirs."""
    if priority is None:
        connection.execute("DELETE FROM studio_settings WHERE key = 'default_priority'")
        return
    connection.execute(
        "INSERT INTO studio_settings (key, value) VALUES ('default_priority', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(check_priority(priority)),),
    )
