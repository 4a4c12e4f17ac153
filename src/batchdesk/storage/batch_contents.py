"""What a batch holds for export: its jobs with their stored input and outputs, a page at a time.

Pages are read by position (keyset), so a batch of any size is walked with flat memory, and a
batch that is still running is read as it stands when each page is fetched.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from batchdesk.errors import InvalidRequest, NotFound
from batchdesk.storage.pool import Connection, only_row

PAGE_SIZE = 500


@dataclass(frozen=True)
class StoredFile:
    """A file kept in the blob store: its name for delivery and what it holds."""

    name: str
    sha256: bytes
    size: int
    media_type: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class JobContents:
    id: int
    position: int
    file_name: str
    status: str
    pipeline: str
    attempts: int
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    input: StoredFile
    outputs: tuple[StoredFile, ...]


@dataclass(frozen=True)
class ContentTotals:
    jobs: int
    output_files: int
    output_bytes: int
    input_bytes: int


_JOB_COLUMNS = (
    "id, position, file_name, status, pipeline, attempts, last_error, created_at, finished_at, "
    "input_sha256, input_size"
)


def _job(row: tuple[Any, ...], outputs: tuple[StoredFile, ...]) -> JobContents:
    (id_, position, file_name, status, pipeline, attempts, error, created, finished) = row[:9]
    stored_input = StoredFile(file_name, bytes(row[9]), row[10], "image/png")
    return JobContents(
        id_, position, file_name, status, pipeline, attempts, error, created, finished,
        stored_input, outputs,
    )  # fmt: skip


def _outputs(connection: Connection, job_ids: list[int]) -> dict[int, tuple[StoredFile, ...]]:
    rows = connection.execute(
        "SELECT job_id, name, sha256, size, media_type, width, height FROM job_outputs "
        "WHERE job_id = ANY(%s) ORDER BY job_id, name",
        (job_ids,),
    ).fetchall()
    found: dict[int, list[StoredFile]] = {}
    for job_id, name, sha256, size, media_type, width, height in rows:
        found.setdefault(job_id, []).append(
            StoredFile(name, bytes(sha256), size, media_type, width, height)
        )
    return {job_id: tuple(files) for job_id, files in found.items()}


def iter_contents(
    connection: Connection, batch_id: UUID, page_size: int = PAGE_SIZE
) -> Iterator[JobContents]:
    """Yield the batch's jobs in submission order, each with its outputs."""
    after = -1
    while True:
        rows = connection.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE batch_id = %s AND position > %s "
            "ORDER BY position LIMIT %s",
            (batch_id, after, page_size),
        ).fetchall()
        if not rows:
            return
        outputs = _outputs(connection, [row[0] for row in rows])
        for row in rows:
            yield _job(row, outputs.get(row[0], ()))
        after = rows[-1][1]


def totals(connection: Connection, batch_id: UUID) -> ContentTotals:
    """Count what an export of the batch will write, for its progress."""
    row = only_row(
        connection.execute(
            "SELECT count(*), coalesce(sum(input_size), 0), "
            "(SELECT count(*) FROM job_outputs o JOIN jobs j ON j.id = o.job_id "
            " WHERE j.batch_id = %s), "
            "(SELECT coalesce(sum(o.size), 0) FROM job_outputs o JOIN jobs j ON j.id = o.job_id "
            " WHERE j.batch_id = %s) "
            "FROM jobs WHERE batch_id = %s",
            (batch_id, batch_id, batch_id),
        )
    )
    jobs, input_bytes, output_files, output_bytes = row
    return ContentTotals(int(jobs), int(output_files), int(output_bytes), int(input_bytes))


def find_job(
    connection: Connection, batch_id: UUID, batch_name: str, reference: str
) -> JobContents:
    """Return the job of the batch named by its file name or its id."""
    text = reference.strip()
    if "\x00" in text:  # PostgreSQL text cannot hold it, and no file name does
        raise NotFound(f"Batch {batch_name} has no job {reference!r}.")
    rows = connection.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE batch_id = %s AND file_name = %s ORDER BY position",
        (batch_id, text),
    ).fetchall()
    if not rows and text.isdigit() and len(text) <= 18:
        rows = connection.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE batch_id = %s AND id = %s",
            (batch_id, int(text)),
        ).fetchall()
    if not rows:
        raise NotFound(f"Batch {batch_name} has no job {reference!r} (give its file name or id).")
    if len(rows) > 1:
        ids = ", ".join(str(row[0]) for row in rows)
        raise InvalidRequest(
            f"{len(rows)} jobs in {batch_name} are named {text!r} (ids {ids}); "
            "give the id of the one you want."
        )
    row = rows[0]
    return _job(row, _outputs(connection, [row[0]]).get(row[0], ()))
