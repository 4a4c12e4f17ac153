"""Submitting files: store their bytes, then create the batch and all its jobs at once.

The order matters for both memory and safety. Files are hashed and uploaded a chunk at a time, in
transactions of their own; only then does one short transaction allocate the batch name, insert
the batch and insert every job. A submission that fails or is cancelled before that transaction
commits leaves no batch and uses no batch number.
"""

import getpass
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from uuid import UUID

from batchdesk.domain.file_selection import SelectedFile, describe_selection
from batchdesk.domain.naming import PrefixRule, base_directory_name
from batchdesk.errors import Cancelled, InvalidRequest, KnownError
from batchdesk.storage import blob_store, file_bytes, pipeline_store
from batchdesk.storage.blob_store import FileDigest
from batchdesk.storage.database import Database
from batchdesk.storage.pipeline_store import PipelineRow
from batchdesk.storage.pool import Connection, only_row

MAX_DESCRIPTION_LENGTH = 4000
# How often the blobs a batch needs may vanish to a concurrent delete before we give up.
_BLOB_RACE_RETRIES = 3

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)
PipelineCheck = Callable[[PipelineRow], object]
"""Raises InvalidRequest for a pipeline whose steps cannot run (the jobs layer knows how)."""


def current_user() -> str:
    """Return `user@host`, recorded on every batch as created_by."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class PlannedBatch:
    """One batch a submission will create: its customer prefix and its files, in order."""

    customer_prefix: str
    files: tuple[SelectedFile, ...]


@dataclass(frozen=True)
class SubmissionPlan:
    batches: tuple[PlannedBatch, ...]
    warnings: tuple[str, ...]


def plan_batches(
    files: Sequence[SelectedFile], rule: PrefixRule, *, split_by_prefix: bool
) -> SubmissionPlan:
    """Group files into batches by customer prefix, or keep them together under the first one."""
    if not files:
        raise InvalidRequest("There are no PNG files to submit.")
    by_prefix: dict[str, list[SelectedFile]] = {}
    for selected in files:
        by_prefix.setdefault(rule.extract(selected.file_name), []).append(selected)
    if split_by_prefix or len(by_prefix) == 1:
        batches = tuple(PlannedBatch(p, tuple(fs)) for p, fs in by_prefix.items())
        return SubmissionPlan(batches, ())
    first = next(iter(by_prefix))
    others = ", ".join(p for p in by_prefix if p != first)
    warning = (
        f"The files have {len(by_prefix)} customer prefixes; all {len(files)} go into one "
        f"{first} batch (from the first file). Other prefixes: {others}. "
        "Use --split-by-prefix for one batch per customer."
    )
    return SubmissionPlan((PlannedBatch(first, tuple(files)),), (warning,))


def clean_description(description: str | None) -> str:
    """Return the description trimmed, or raise InvalidRequest if it cannot be stored."""
    text = (description or "").strip()
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidRequest(
            f"The description is {len(text):,} characters long; the limit is "
            f"{MAX_DESCRIPTION_LENGTH:,}."
        )
    if "\x00" in text:
        raise InvalidRequest("The description contains a NUL character, which cannot be stored.")
    return text


@dataclass(frozen=True)
class CreatedBatch:
    id: UUID
    base_directory_name: str
    customer_prefix: str
    batch_date: date
    batch_counter: int
    render_description: str
    pipeline: str
    pipeline_version: int
    total_files: int
    total_size: int
    status: str


@dataclass(frozen=True)
class SubmissionResult:
    batches: tuple[CreatedBatch, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class SubmissionRequest:
    files: tuple[SelectedFile, ...]
    source_paths: tuple[Path, ...] = ()  # what the user chose, for the generated description
    description: str | None = None
    pipeline: str = "original"
    split_by_prefix: bool = False
    prefix_rule: PrefixRule = PrefixRule()
    created_by: str = ""
    batch_date: date | None = None  # None: today, by the database's clock


def submit(
    database: Database,
    request: SubmissionRequest,
    progress: ProgressCallback | None = None,
    cancelled: blob_store.CancelCheck | None = None,
    *,
    check_pipeline: PipelineCheck | None = None,
) -> SubmissionResult:
    """Store the files and create the batches the request asks for, all or nothing.

    The pipeline is checked before anything is stored: it must exist, not be retired and (with
    `check_pipeline`) have steps that can run. The batches record the version checked here, so
    a replacement stored while the files upload does not change what they run.
    """
    description = clean_description(request.description)
    plan = plan_batches(request.files, request.prefix_rule, split_by_prefix=request.split_by_prefix)
    with database.connect() as connection:
        pipeline = pipeline_store.require_offered(connection, request.pipeline)
    if check_pipeline is not None:
        check_pipeline(pipeline)

    total = sum(f.size for f in request.files)
    upload_progress = (lambda done, all_: progress("Storing", done, all_)) if progress else None
    digests = file_bytes.upload_files(
        database, [f.path for f in request.files], total, upload_progress, cancelled
    )
    if cancelled and cancelled():
        raise Cancelled("The submission was cancelled; no batch was created.")
    items = [(f.path, d) for f, d in zip(request.files, digests, strict=True)]

    by_path = {f.path: d for f, d in zip(request.files, digests, strict=True)}
    for attempt in range(_BLOB_RACE_RETRIES):
        with database.begin() as connection:
            missing = _lock_blobs(connection, digests)
            if not missing:
                pipeline_store.require_offered(connection, request.pipeline)  # retired meanwhile?
                created = {
                    planned.customer_prefix: _create_batch(
                        connection, planned, by_path, description, request, pipeline.version
                    )
                    for planned in _in_lock_order(plan.batches)
                }
                batches = tuple(created[p.customer_prefix] for p in plan.batches)
                return SubmissionResult(batches, plan.warnings)
        if attempt + 1 < _BLOB_RACE_RETRIES:
            # A batch deleted meanwhile took some of our stored files with it: store them again.
            again = [item for item in items if item[1].sha256 in missing]
            size = sum(d.size for _, d in again)
            file_bytes.upload(database, again, size, upload_progress, cancelled)
    raise KnownError(
        "Files kept disappearing from the database while the batch was being created (another "
        "workstation is deleting batches that use the same files); submit again."
    )


def _in_lock_order(batches: Sequence[PlannedBatch]) -> list[PlannedBatch]:
    # Two submissions taking day counters for the same prefixes lock them in the same order.
    return sorted(batches, key=lambda b: b.customer_prefix)


def _lock_blobs(connection: Connection, digests: Sequence[FileDigest]) -> set[bytes]:
    """Hold the stored files against deletion until commit; return the hashes that are gone."""
    wanted = {d.sha256 for d in digests}
    return wanted - blob_store.hold(connection, wanted)


def allocate_counter(
    connection: Connection, prefix: str, batch_date: date | None
) -> tuple[date, int]:
    """Take the next batch number for `prefix` on `batch_date` (today if None).

    The counter row stays locked until the caller's transaction ends: a concurrent submission
    for the same customer and day waits, then gets the next number; a rollback gives the number
    back, so numbers have no gaps.
    """
    row = only_row(
        connection.execute(
            "INSERT INTO batch_day_counters AS c (customer_prefix, batch_date, last_counter) "
            "VALUES (%s, coalesce(%s, batchdesk_today()), 1) "
            "ON CONFLICT (customer_prefix, batch_date) "
            "DO UPDATE SET last_counter = c.last_counter + 1 "
            "RETURNING batch_date, last_counter",
            (prefix, batch_date),
        )
    )
    return row[0], row[1]


def _create_batch(
    connection: Connection,
    planned: PlannedBatch,
    digests: dict[Path, FileDigest],
    description: str,
    request: SubmissionRequest,
    pipeline_version: int,
) -> CreatedBatch:
    batch_date, counter = allocate_counter(connection, planned.customer_prefix, request.batch_date)
    name = base_directory_name(planned.customer_prefix, batch_date, counter)
    text = description or describe_selection(request.source_paths, planned.files)
    batch_id = only_row(
        connection.execute(
            "INSERT INTO batches (customer_prefix, batch_date, batch_counter, base_directory_name, "
            "render_description, pipeline, pipeline_version, created_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                planned.customer_prefix,
                batch_date,
                counter,
                name,
                text,
                request.pipeline,
                pipeline_version,
                request.created_by or current_user(),
            ),
        )
    )[0]
    files = planned.files
    connection.execute(
        "INSERT INTO jobs (batch_id, position, file_name, source_path, input_sha256, "
        "input_size, pipeline) "
        "SELECT %s, u.position, u.file_name, u.source_path, u.sha256, u.size, %s "
        "FROM unnest(%s::integer[], %s::text[], %s::text[], %s::bytea[], %s::bigint[]) "
        "AS u(position, file_name, source_path, sha256, size)",
        (
            batch_id,
            request.pipeline,
            list(range(len(files))),
            [f.file_name for f in files],
            [_printable_path(f.path) for f in files],
            [digests[f.path].sha256 for f in files],
            [digests[f.path].size for f in files],
        ),
    )
    row = only_row(
        connection.execute(
            "SELECT total_files, total_size, status FROM batches WHERE id = %s", (batch_id,)
        )
    )
    return CreatedBatch(
        id=batch_id,
        base_directory_name=name,
        customer_prefix=planned.customer_prefix,
        batch_date=batch_date,
        batch_counter=counter,
        render_description=text,
        pipeline=request.pipeline,
        pipeline_version=pipeline_version,
        total_files=row[0],
        total_size=row[1],
        status=row[2],
    )


def _printable_path(path: Path) -> str:
    # A path that is not valid UTF-8 on disk cannot be stored as text; show it with U+FFFD.
    return bytes(path).decode("utf-8", "replace")
