"""Reading and deleting batches: the queries behind the tree, the dashboard and the CLI.

Every function takes a Connection and returns frozen dataclasses, which may cross threads.
Rows never carry file bytes: those stay in `blob_chunks` until an export asks for them.
"""

import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

from batchdesk.domain.batch_query import BatchQuery, SortOrder
from batchdesk.domain.naming import parse_base_directory_name
from batchdesk.domain.units import plural
from batchdesk.errors import InvalidRequest, NotFound
from batchdesk.storage import blob_store
from batchdesk.storage.pool import Connection, only_row

BATCH_COLUMNS = (
    "id",
    "customer_prefix",
    "batch_date",
    "batch_counter",
    "base_directory_name",
    "render_description",
    "pipeline",
    "pipeline_version",
    "total_files",
    "total_pipelines",
    "total_size",
    "queued_count",
    "processing_count",
    "completed_count",
    "failed_count",
    "cancelled_count",
    "status",
    "created_at",
    "updated_at",
    "completed_at",
    "finished_at",
    "created_by",
    "dropbox_path",
    "dropbox_uploaded_at",
    "monday_item_id",
    "delivered_at",
    "delivered_to",
    "priority",
    "paused_at",
)

JOB_COLUMNS = (
    "id",
    "batch_id",
    "position",
    "file_name",
    "source_path",
    "input_sha256",
    "input_size",
    "pipeline",
    "status",
    "attempts",
    "max_attempts",
    "last_error",
    "worker",
    "heartbeat_at",
    "run_after",
    "created_at",
    "started_at",
    "finished_at",
)

# Sort names (domain.batch_query.SORT_COLUMNS) to SQL; the only place a sort becomes SQL text.
_SORT_SQL = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "completed_at": "completed_at",
    "base_directory_name": "base_directory_name",
    "customer_prefix": "customer_prefix",
    "batch_date": "batch_date",
    "render_description": "render_description",
    "status": "status",
    "total_files": "total_files",
    "total_size": "total_size",
    "created_by": "created_by",
    "pipeline": "pipeline",
    "priority": "priority",
    "progress": "(completed_count + failed_count + cancelled_count)::float8"
    " / greatest(total_files, 1)",
}


@dataclass(frozen=True)
class BatchRow:
    id: UUID
    customer_prefix: str
    batch_date: date
    batch_counter: int
    base_directory_name: str
    render_description: str
    pipeline: str
    pipeline_version: int  # the version of the pipeline its jobs run
    total_files: int
    total_pipelines: int
    total_size: int
    queued_count: int
    processing_count: int
    completed_count: int
    failed_count: int
    cancelled_count: int
    status: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None  # when it became completed; None unless completed
    finished_at: datetime | None  # when it finished: completed, failed or cancelled
    created_by: str
    dropbox_path: str | None
    dropbox_uploaded_at: datetime | None
    monday_item_id: str | None
    delivered_at: datetime | None
    delivered_to: str | None
    priority: int  # 0-100: workers take higher ones first (farm_controls)
    paused_at: datetime | None  # when it was paused; None unless paused

    @property
    def finished_count(self) -> int:
        return self.completed_count + self.failed_count + self.cancelled_count

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class JobRow:
    id: int
    batch_id: UUID
    position: int
    file_name: str
    source_path: str
    input_sha256: str  # hex
    input_size: int
    pipeline: str
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    worker: str | None
    heartbeat_at: datetime | None
    run_after: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class BatchStats:
    """The dashboard figures, named as the original system named them."""

    total_batches: int
    queued: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    paused: int
    total_files_all_time: int
    avg_files_per_batch: float
    max_files_in_batch: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, datetime | date):
            out[key] = value.isoformat()
        elif isinstance(value, UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def batch_row(row: tuple[Any, ...]) -> BatchRow:
    """A BatchRow from the columns of BATCH_COLUMNS, in that order."""
    return BatchRow(*row)


def _job(row: tuple[Any, ...]) -> JobRow:
    values = list(row)
    values[5] = bytes(values[5]).hex()
    return JobRow(*values)


def where_clause(query: BatchQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") of `query`'s filters and its bound values."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.statuses:
        clauses.append("status = ANY(%s)")
        params.append(sorted(s.value for s in query.statuses))
    if query.customer_prefix:
        clauses.append("customer_prefix = %s")
        params.append(query.customer_prefix.upper())  # prefixes are stored in upper case
    if query.created_by:
        clauses.append("created_by = %s")
        params.append(query.created_by)
    if query.pipeline:
        clauses.append("pipeline = %s")
        params.append(query.pipeline)
    if query.created_from is not None:
        clauses.append("created_at >= %s")
        params.append(query.created_from)
    if query.created_before is not None:
        clauses.append("created_at < %s")
        params.append(query.created_before)
    if query.finished_from is not None:
        clauses.append("finished_at >= %s")
        params.append(query.finished_from)
    if query.text:
        # Name, description and file names, lower-cased in one row per batch (migration 0008):
        # one LIKE over short rows, not an ILIKE over every job.
        clauses.append("id IN (SELECT batch_id FROM batch_search WHERE content LIKE lower(%s))")
        params.append(_contains_pattern(query.text))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def order_clause(query: BatchQuery) -> str:
    """`query`'s sort as SQL, ties broken by id so that every order is total."""
    direction = "DESC" if query.order is SortOrder.DESC else "ASC"
    nulls = "NULLS LAST" if query.order is SortOrder.DESC else "NULLS FIRST"
    return f"{_SORT_SQL[query.sort_by]} {direction} {nulls}, id {direction}"


def list_batches(connection: Connection, query: BatchQuery) -> list[BatchRow]:
    """Return one page of batches matching `query`, in its order (ties broken by id)."""
    where, params = where_clause(query)
    sql = (
        f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches{where} "
        f"ORDER BY {order_clause(query)} LIMIT %s OFFSET %s"
    )
    rows = connection.execute(sql, [*params, query.limit, query.offset]).fetchall()
    return [batch_row(row) for row in rows]


def count_batches(connection: Connection, query: BatchQuery) -> int:
    if query.text and not where_clause(replace(query, text=None))[0]:
        # Only a text: count the search rows that match (one per batch), which the trigram
        # index answers without reading the batches (migration 0011).
        row = only_row(
            connection.execute(
                "SELECT count(*) FROM batch_search WHERE content LIKE lower(%s)",
                (_contains_pattern(query.text),),
            )
        )
        return int(row[0])
    where, params = where_clause(query)
    row = only_row(connection.execute(f"SELECT count(*) FROM batches{where}", params))
    return int(row[0])


def batch_page(connection: Connection, query: BatchQuery) -> tuple[list[BatchRow], int]:
    """One page of batches matching `query`, and how many match in all.

    Two statements, also for a text search. The page is a top-N in the list's order, which
    stops at the page's last match; the total is a count, which for a search the trigram
    index serves (migration 0011). One statement with `count(*) OVER ()` made the planner walk
    every batch newest first, looking each one's text up, to count them: at 100,000 batches a
    search matching a tenth of them took 290-400 ms that way, and 20-40 ms as two statements
    (bench_search.py). A page that is not full is the last one: its end is the total.
    """
    rows = list_batches(connection, query)
    if len(rows) < query.limit and (rows or not query.offset):
        return rows, query.offset + len(rows)
    return rows, count_batches(connection, query)


def find_batch(connection: Connection, reference: str) -> BatchRow:
    """Return the batch named by `reference`: its id or its base directory name."""
    text = reference.strip()
    if "\x00" in text:  # no name can hold one, and PostgreSQL text cannot carry it
        raise NotFound(f"There is no batch {reference!r}.")
    row = None
    try:
        batch_id = UUID(text)
    except ValueError:
        row = connection.execute(
            f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches WHERE base_directory_name = %s",
            (text,),
        ).fetchone()
    else:
        row = connection.execute(
            f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches WHERE id = %s", (batch_id,)
        ).fetchone()
    if row is None:
        hint = ""
        if parse_base_directory_name(text) is None and not _looks_like_uuid(text):
            hint = " (give a batch id or a name like PL_DXB_2026-11-28_batch-3)"
        raise NotFound(f"There is no batch {reference!r}{hint}.")
    return batch_row(row)


def _looks_like_uuid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F-]{32,36}", text))


def list_jobs(
    connection: Connection,
    batch_id: UUID,
    *,
    offset: int = 0,
    limit: int | None = None,
    statuses: Collection[str] | None = None,
) -> list[JobRow]:
    """Return a batch's jobs in submission order, optionally one page of them.

    With `statuses`, only the jobs in one of those statuses; `offset` then counts those.
    """
    if offset < 0 or (limit is not None and limit < 0):
        raise InvalidRequest(f"A page of jobs cannot start at {offset} or hold {limit} jobs.")
    where = "batch_id = %s"
    params: list[Any] = [batch_id]
    if statuses is not None:
        where += " AND status = ANY(%s)"
        params.append(sorted(statuses))
    rows = connection.execute(
        f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE {where} "
        "ORDER BY position LIMIT %s OFFSET %s",
        [*params, limit, offset],
    ).fetchall()
    return [_job(row) for row in rows]


def batch_stats(connection: Connection) -> BatchStats:
    row = only_row(
        connection.execute(
            "SELECT count(*), "
            "count(*) FILTER (WHERE status = 'queued'), "
            "count(*) FILTER (WHERE status = 'processing'), "
            "count(*) FILTER (WHERE status = 'completed'), "
            "count(*) FILTER (WHERE status = 'failed'), "
            "count(*) FILTER (WHERE status = 'cancelled'), "
            "count(*) FILTER (WHERE status = 'paused'), "
            "coalesce(sum(total_files), 0), "
            "coalesce(round(avg(total_files), 1), 0)::float8, "
            "coalesce(max(total_files), 0) "
            "FROM batches"
        )
    )
    total, queued, processing, completed, failed, cancelled, paused, files, average, largest = row
    return BatchStats(
        total_batches=total,
        queued=queued,
        processing=processing,
        completed=completed,
        failed=failed,
        cancelled=cancelled,
        paused=paused,
        total_files_all_time=int(files),
        avg_files_per_batch=float(average),
        max_files_in_batch=largest,
    )


def customer_prefixes(connection: Connection) -> list[str]:
    rows = connection.execute(
        "SELECT DISTINCT customer_prefix FROM batches ORDER BY customer_prefix"
    ).fetchall()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class FilterChoices:
    """What the batches hold to filter by: customers, who submitted, pipelines; each sorted."""

    customers: tuple[str, ...]
    creators: tuple[str, ...]
    pipelines: tuple[str, ...]


def filter_choices(connection: Connection) -> FilterChoices:
    """Return the distinct customers, submitters and pipelines of the batches there are."""
    rows = connection.execute(
        "SELECT customer_prefix, created_by, pipeline FROM batches "
        "GROUP BY GROUPING SETS ((customer_prefix), (created_by), (pipeline))"
    ).fetchall()
    customers = sorted({row[0] for row in rows if row[0] is not None})
    creators = sorted({row[1] for row in rows if row[1]})
    pipelines = sorted({row[2] for row in rows if row[2] is not None})
    return FilterChoices(tuple(customers), tuple(creators), tuple(pipelines))


@dataclass(frozen=True)
class DeletedBatch:
    id: UUID
    base_directory_name: str
    total_files: int
    interrupted_jobs: int  # jobs that were processing: their results will be discarded
    # Files whose rows went and whose bytes stay in the file store until `db gc` removes them.
    left_in_store: int = 0


def delete_batch(connection: Connection, batch_id: UUID) -> DeletedBatch:
    """Delete a batch, its jobs and the stored files nothing else uses.

    Locks the batch's jobs in id order before the batch row, the same order a worker finishing
    a job takes (job, then its batch through the trigger), so the two cannot deadlock.
    """
    locked = connection.execute(
        "SELECT id, status, input_sha256 FROM jobs WHERE batch_id = %s ORDER BY id FOR UPDATE",
        (batch_id,),
    ).fetchall()
    outputs = connection.execute(
        "SELECT o.sha256 FROM job_outputs o JOIN jobs j ON j.id = o.job_id WHERE j.batch_id = %s",
        (batch_id,),
    ).fetchall()
    row = connection.execute(
        "DELETE FROM batches WHERE id = %s RETURNING id, base_directory_name, total_files",
        (batch_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"There is no batch {str(batch_id)!r}; it may have been deleted already.")
    files = [bytes(r[2]) for r in locked] + [bytes(r[0]) for r in outputs]
    gone = blob_store.delete_unreferenced(connection, files)
    interrupted = sum(1 for r in locked if r[1] == "processing")
    return DeletedBatch(row[0], row[1], row[2], interrupted, gone.in_store)


def store_space_note(deleted: Sequence[DeletedBatch]) -> str:
    """A sentence on when the file store's copies of deleted batches' files go ("" if none)."""
    left = sum(d.left_in_store for d in deleted)
    if not left:
        return ""
    return (
        f"Their {plural(left, 'file')} in the file store go at the next `batchdesk db gc --yes` "
        "(an hour from now at the earliest)."
    )


def drifted_batches(connection: Connection) -> list[str]:
    """Return the names of batches whose stored counts disagree with their jobs."""
    rows = connection.execute(
        "SELECT base_directory_name FROM batch_count_drift ORDER BY base_directory_name"
    ).fetchall()
    return [row[0] for row in rows]


def recount_batch(connection: Connection, batch_id: UUID) -> bool:
    """Recount a batch from its jobs; True if its counts were wrong and have been repaired."""
    row = only_row(connection.execute("SELECT recount_batch(%s)", (batch_id,)))
    return bool(row[0])


def batches_by_ids(connection: Connection, ids: Collection[UUID]) -> list[BatchRow]:
    """Return the batches among `ids` that still exist, in id order."""
    if not ids:
        return []
    rows = connection.execute(
        f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches WHERE id = ANY(%s) ORDER BY id",
        (list(ids),),
    ).fetchall()
    return [batch_row(row) for row in rows]
