"""`completed_at` for completed batches only; `finished_at` for every finished batch.

Until now the trigger set `completed_at` when a batch finished in any way (completed, failed or
cancelled), while the README, the original system and the name tie it to `completed`. It now
means what it says, as in the original system: the moment the batch became `completed`.
When a batch finished, whatever the outcome, is `finished_at`, as it is for jobs. Both are set
by the trigger alone, once, and cleared when work on the batch resumes (a retry).

Existing rows are fixed here: a finished batch's old `completed_at` becomes its `finished_at`,
and stays its `completed_at` only if the batch is completed. The fix does not count as a change
to the batches: their `updated_at` stays and no NOTIFY is sent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BEFORE_WRITE = """
-- Every write to a batch derives total_files, status, updated_at, finished_at and completed_at
-- from the counts, so no caller can set them inconsistently.
CREATE OR REPLACE FUNCTION batches_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.total_files := NEW.queued_count + NEW.processing_count + NEW.completed_count
                       + NEW.failed_count + NEW.cancelled_count;
    NEW.status := batch_status_for(NEW.queued_count, NEW.processing_count, NEW.completed_count,
                                   NEW.failed_count, NEW.cancelled_count);
    IF TG_OP = 'INSERT' THEN
        NEW.finished_at := NULL;
        NEW.completed_at := NULL;
        RETURN NEW;
    END IF;
    NEW.updated_at := now();
    -- finished_at: when the batch last became finished (completed, failed or cancelled).
    IF NEW.status NOT IN ('completed', 'failed', 'cancelled') THEN
        NEW.finished_at := NULL;
    ELSIF OLD.status IN ('completed', 'failed', 'cancelled') AND OLD.finished_at IS NOT NULL THEN
        NEW.finished_at := OLD.finished_at;
    ELSE
        NEW.finished_at := now();
    END IF;
    -- completed_at: when the batch last became completed.
    IF NEW.status <> 'completed' THEN
        NEW.completed_at := NULL;
    ELSIF OLD.status = 'completed' AND OLD.completed_at IS NOT NULL THEN
        NEW.completed_at := OLD.completed_at;
    ELSE
        NEW.completed_at := now();
    END IF;
    RETURN NEW;
END
$$;
"""

OLD_BEFORE_WRITE = """
CREATE OR REPLACE FUNCTION batches_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.total_files := NEW.queued_count + NEW.processing_count + NEW.completed_count
                       + NEW.failed_count + NEW.cancelled_count;
    NEW.status := batch_status_for(NEW.queued_count, NEW.processing_count, NEW.completed_count,
                                   NEW.failed_count, NEW.cancelled_count);
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        IF NEW.status NOT IN ('completed', 'failed', 'cancelled') THEN
            NEW.completed_at := NULL;
        ELSIF OLD.status IN ('completed', 'failed', 'cancelled') THEN
            NEW.completed_at := OLD.completed_at;  -- set once, when the batch finished
        ELSE
            NEW.completed_at := now();
        END IF;
    ELSE
        NEW.completed_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
"""

# Row fixes bypass the batch triggers, which would otherwise re-derive the very columns being
# fixed, stamp updated_at and announce every batch.
WITHOUT_TRIGGERS = """
ALTER TABLE batches DISABLE TRIGGER trigger_batches_updated_at;
ALTER TABLE batches DISABLE TRIGGER trigger_batches_notify;
{fix}
ALTER TABLE batches ENABLE TRIGGER trigger_batches_updated_at;
ALTER TABLE batches ENABLE TRIGGER trigger_batches_notify;
"""

UPGRADE_ROWS = """
UPDATE batches SET
    finished_at = completed_at,
    completed_at = CASE WHEN status = 'completed' THEN completed_at END
WHERE completed_at IS NOT NULL;
"""

DOWNGRADE_ROWS = """
UPDATE batches SET completed_at = finished_at
WHERE status IN ('failed', 'cancelled') AND finished_at IS NOT NULL;
"""


def upgrade() -> None:
    op.execute("ALTER TABLE batches ADD COLUMN finished_at timestamptz")
    op.execute(WITHOUT_TRIGGERS.format(fix=UPGRADE_ROWS))
    op.execute(BEFORE_WRITE)


def downgrade() -> None:
    op.execute(OLD_BEFORE_WRITE)
    op.execute(WITHOUT_TRIGGERS.format(fix=DOWNGRADE_ROWS))
    op.execute("ALTER TABLE batches DROP COLUMN finished_at")
