"""Which completed batches still need delivering, and one deliverer at a time for each.

A deliverer (auto-delivery, or `batchdesk deliver` by hand) holds a session-level advisory lock
on the batch while it writes, so two workstations never write the same batch at once, and a
deliverer that dies lets go of it with its connection. `delivered_at` records the last delivery,
as of the moment it began reading the batch; a batch completed after that (a retry, or a
delivery by hand before it finished) is delivered again.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection, only_row

# First key of the two-key advisory lock; the second is derived from the batch id.
DELIVERY_LOCK_CLASS = 0x42_44_44  # "BDD"


@dataclass(frozen=True)
class PendingDelivery:
    batch_id: UUID
    base_directory_name: str


def pending(
    connection: Connection, lookback_seconds: float, limit: int = 20
) -> list[PendingDelivery]:
    """Completed batches, finished within the look-back window, not delivered since."""
    rows = connection.execute(
        "SELECT id, base_directory_name FROM batches "
        "WHERE status = 'completed' AND completed_at > now() - make_interval(secs => %s) "
        "AND (delivered_at IS NULL OR delivered_at < completed_at) "
        "ORDER BY completed_at LIMIT %s",
        (lookback_seconds, limit),
    ).fetchall()
    return [PendingDelivery(row[0], row[1]) for row in rows]


@contextmanager
def claimed(database: Database, batch_id: UUID, *, only_if_due: bool = True) -> Iterator[bool]:
    """Hold the batch's delivery lock for the block; yield False if another deliverer has it
    or (with `only_if_due`, as auto-delivery asks) the batch no longer needs delivering."""
    with database.connect() as connection:
        connection.autocommit = True  # the lock outlives statements, not a transaction held open
        try:
            key = (DELIVERY_LOCK_CLASS, batch_id)
            got = only_row(
                connection.execute("SELECT pg_try_advisory_lock(%s::int4, hashtext(%s::text))", key)
            )[0]
            if not got:
                yield False
                return
            try:
                if not only_if_due:
                    yield True
                    return
                still = connection.execute(
                    "SELECT 1 FROM batches WHERE id = %s AND status = 'completed' "
                    "AND (delivered_at IS NULL OR delivered_at < completed_at)",
                    (batch_id,),
                ).fetchone()
                yield still is not None
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s::int4, hashtext(%s::text))", key)
        finally:
            connection.autocommit = False


def mark_delivered(database: Database, batch_id: UUID, destination: str, as_of: datetime) -> None:
    """Record a delivery of the batch as it stood at `as_of` (when the deliverer began reading)."""
    with database.begin() as connection:
        connection.execute(
            "UPDATE batches SET delivered_at = %s, delivered_to = %s WHERE id = %s",
            (as_of, destination, batch_id),
        )
