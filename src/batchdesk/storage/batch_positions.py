"""Where batches stand in a list's order: for a window that shows the first rows of a long list.

A batch that changes (or arrives) may move up or down a sorted, filtered list; these queries
rank every matching batch exactly as `batch_queries.list_batches` orders them, so a position
here is a row there.
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from batchdesk.domain.batch_query import BatchQuery
from batchdesk.storage.batch_queries import (
    BATCH_COLUMNS,
    BatchRow,
    batch_row,
    order_clause,
    where_clause,
)
from batchdesk.storage.pool import Connection


@dataclass(frozen=True)
class PlacedBatch:
    """A batch and where it stands in a query's order: 0 is the first row."""

    position: int
    batch: BatchRow


def _ranked(query: BatchQuery) -> tuple[str, list[Any]]:
    # Every batch matching the filters with its row number in the order list_batches uses,
    # so a position here is a row there.
    where, params = where_clause(query)
    sql = (
        "WITH ranked AS (SELECT id, row_number() OVER "
        f"(ORDER BY {order_clause(query)}) - 1 AS position "
        f"FROM batches{where}) "
    )
    return sql, params


def place_batches(
    connection: Connection, query: BatchQuery, ids: Collection[UUID]
) -> list[PlacedBatch]:
    """Return those of `ids` that match `query`'s filters, with their positions in its order.

    A position counts every matching batch, not only those asked for, so a window showing the
    first rows of a list learns where a changed or new batch now belongs. Ids of batches that
    are gone or no longer match are left out; the query's page (offset, limit) is ignored.
    """
    if not ids:
        return []
    ranked, params = _ranked(query)
    columns = ", ".join(f"b.{name}" for name in BATCH_COLUMNS)
    sql = (
        f"{ranked}SELECT r.position, {columns} FROM ranked r JOIN batches b ON b.id = r.id "
        "WHERE r.id = ANY(%s) ORDER BY r.position"
    )
    rows = connection.execute(sql, [*params, list(ids)]).fetchall()
    return [PlacedBatch(int(row[0]), batch_row(row[1:])) for row in rows]


def batch_positions(
    connection: Connection, query: BatchQuery, ids: Collection[UUID]
) -> dict[UUID, int]:
    """Return the positions in `query`'s order of those of `ids` that match its filters.

    As place_batches, without reading the rows: for batches a window shows already.
    """
    if not ids:
        return {}
    ranked, params = _ranked(query)
    sql = f"{ranked}SELECT id, position FROM ranked WHERE id = ANY(%s)"
    rows = connection.execute(sql, [*params, list(ids)]).fetchall()
    return {row[0]: int(row[1]) for row in rows}
