"""The jobs update trigger keeps the batch counts with less work per statement.

Every claim, completion, failure and heartbeat of the job engine is an UPDATE of `jobs`, and
its statement-level trigger (0001) adds the net change of each batch's counts to the batch row.
That row is locked from the trigger until the commit, so on a farm working through one large
batch every worker's statement queues behind it: the trigger's own time is time the row stays
locked. Profiled with EXPLAIN ANALYZE on a claim of 10 jobs (PostgreSQL 15), the trigger took
0.28 ms of the statement's 0.6 ms.

The counts it adds are the same; the work is less:
- the old and new rows are joined once, each changed pair giving its two signed rows through a
  LATERAL VALUES, instead of a CTE of changed ids probed again from both transition tables;
- the batch row is updated by the function's own UPDATE (its plan kept for the session),
  instead of through `batch_add_counts`, a SQL function set up again on every call;
- a batch whose deltas are all zero (a job moved between two batches and back in one
  statement) is not touched. Statements that change no status (heartbeats) find no rows, as
  before.
Measured the same way: 0.18 ms instead of 0.28 ms. `batch_add_counts` stays for the insert and
delete triggers.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE OR REPLACE FUNCTION jobs_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE d record;
BEGIN
    FOR d IN
        SELECT v.batch_id,
               coalesce(sum(v.sign) FILTER (WHERE v.status = 'queued'), 0) AS q,
               coalesce(sum(v.sign) FILTER (WHERE v.status = 'processing'), 0) AS p,
               coalesce(sum(v.sign) FILTER (WHERE v.status = 'completed'), 0) AS c,
               coalesce(sum(v.sign) FILTER (WHERE v.status = 'failed'), 0) AS f,
               coalesce(sum(v.sign) FILTER (WHERE v.status = 'cancelled'), 0) AS x,
               coalesce(sum(v.sign * v.input_size), 0)::bigint AS size
        FROM old_jobs o JOIN new_jobs n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (n.batch_id, n.status, n.input_size, 1),
                                   (o.batch_id, o.status, o.input_size, -1))
            AS v(batch_id, status, input_size, sign)
        WHERE (o.status, o.batch_id, o.input_size)
              IS DISTINCT FROM (n.status, n.batch_id, n.input_size)
        GROUP BY v.batch_id ORDER BY v.batch_id  -- batches locked in id order, as before
    LOOP
        CONTINUE WHEN d.q = 0 AND d.p = 0 AND d.c = 0 AND d.f = 0 AND d.x = 0 AND d.size = 0;
        UPDATE batches SET
            queued_count     = queued_count + d.q,
            processing_count = processing_count + d.p,
            completed_count  = completed_count + d.c,
            failed_count     = failed_count + d.f,
            cancelled_count  = cancelled_count + d.x,
            total_size       = total_size + d.size
        WHERE id = d.batch_id;
    END LOOP;
    RETURN NULL;
END
$$;
"""

# 0001's function, as it was.
DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION jobs_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE d record;
BEGIN
    FOR d IN
        WITH changed AS (
            SELECT o.id FROM old_jobs o JOIN new_jobs n ON n.id = o.id
            WHERE (o.status, o.batch_id, o.input_size)
                  IS DISTINCT FROM (n.status, n.batch_id, n.input_size)
        ), delta AS (
            SELECT batch_id, status, input_size, 1 AS sign
            FROM new_jobs WHERE id IN (SELECT id FROM changed)
            UNION ALL
            SELECT batch_id, status, input_size, -1 AS sign
            FROM old_jobs WHERE id IN (SELECT id FROM changed)
        )
        SELECT batch_id,
               coalesce(sum(sign) FILTER (WHERE status = 'queued'), 0) AS q,
               coalesce(sum(sign) FILTER (WHERE status = 'processing'), 0) AS p,
               coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0) AS c,
               coalesce(sum(sign) FILTER (WHERE status = 'failed'), 0) AS f,
               coalesce(sum(sign) FILTER (WHERE status = 'cancelled'), 0) AS x,
               coalesce(sum(sign * input_size), 0)::bigint AS size
        FROM delta GROUP BY batch_id ORDER BY batch_id
    LOOP
        PERFORM batch_add_counts(d.batch_id, d.q, d.p, d.c, d.f, d.x, d.size);
    END LOOP;
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
