"""A worker's cycle in one statement: complete the jobs it finished and claim the next ones.

A completion and a claim are each an UPDATE of `jobs`, and the jobs update trigger of each
takes the lock of the batch row to keep its counts; on a farm working through one batch every
worker's statements queue on that one row. Two UPDATE CTEs of `jobs` in one statement share
their transition tables, so the trigger runs once for both and the batch row is locked once a
cycle instead of twice, and the worker makes one round trip instead of two.

The two parts are exactly job_queue's (`COMPLETE_CTES`, `CLAIM_CTES`): each finished job is
completed only under its own lease token (a job fenced off is not completed, gets no outputs,
and the claims go on all the same), its attempt closed and its outputs stored with it; the
claim takes the queued, due, unpaused jobs in priority order, none for a worker told to pause,
and opens their attempts. The rows they change are disjoint: completed jobs were processing,
claimed ones queued.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import (
    CLAIM_CTES,
    CLAIMED_COLUMNS,
    COMPLETE_CTES,
    ClaimedJob,
    Completion,
    claim_many,
    claimed_job,
    complete_many,
    completing,
)
from batchdesk.storage.pool import Connection

# One row at least (the LEFT JOIN), so that the completed ids come back when nothing is
# claimed; the claimed jobs in the claim's order.
_COMPLETE_AND_CLAIM = f"""
WITH {COMPLETE_CTES}, {CLAIM_CTES}
SELECT ARRAY(SELECT id FROM ended), c.* FROM (VALUES (1)) AS one(x)
LEFT JOIN LATERAL (
    SELECT {CLAIMED_COLUMNS}, priority, run_after FROM claimed
) c ON true
ORDER BY c.priority DESC, c.run_after, c.id
"""
_CLAIMED_WIDTH = len(CLAIMED_COLUMNS.split(","))


@dataclass(frozen=True)
class Cycle:
    """What one cycle did: the ids completed (the others were fenced off) and the jobs claimed."""

    completed: set[int] = field(default_factory=set)
    claimed: list[ClaimedJob] = field(default_factory=list)


def complete_and_claim(
    database: Database, worker_id: str, completions: Sequence[Completion], limit: int
) -> Cycle:
    """Complete `completions` and claim up to `limit` jobs for `worker_id`, in one statement.

    As `job_queue.complete_many` then `job_queue.claim_many`, in one transaction: the claimed
    jobs come back in the order they should start.
    """
    if not completions:
        return Cycle(claimed=claim_many(database, worker_id, limit))
    if limit < 1:
        return Cycle(completed=complete_many(database, completions))

    def statement(connection: Connection, params: dict[str, Any]) -> Cycle:
        rows = connection.execute(
            _COMPLETE_AND_CLAIM, {**params, "worker": worker_id, "limit": limit}
        ).fetchall()
        claimed = [claimed_job(row[1 : 1 + _CLAIMED_WIDTH]) for row in rows if row[1] is not None]
        return Cycle(completed=set(rows[0][0]), claimed=claimed)

    return completing(database, completions, statement)
