"""Farm controls: batch priority and pause, every attempt of a job, steerable workers.

- **Priority** (0-100) belongs to the batch; new batches get the studio's default
  (`studio_settings` key `default_priority`, else 50). Workers take the highest-priority due job
  first, then the oldest. The claim reads one partial index over the queued jobs that may run,
  so each job carries a copy of its batch's priority and pause: `jobs.priority`, `jobs.paused`.
  The copies are written only by the statements that change the batch (every job of the batch,
  in id order, before the batch row: the usual lock order), and a new job takes its batch's
  values in the statement that inserts it. A job never reads its batch to be claimed.
- **Pause** is `batches.paused_at`. The batch trigger derives `paused` as the status of a paused
  batch that has work left (queued jobs, or running ones finishing); a paused batch whose jobs
  have all finished shows its finished status, and stays paused until resumed, so a job put
  back into it waits. Counts stay one mechanism: the status is derived in the same place.
- **Attempts** are rows of `job_attempts`, opened by the claim and closed by whatever ends the
  attempt (the worker's completion, failure or release, the reaper, a cancel), in the same
  transaction. `number` counts every attempt the job ever had; a retry's fresh attempts go on
  counting. At most one attempt of a job is open: the one of its running claim.
- **Workers** gain `kind`, `desired_state` (set by anyone: `batchdesk workers pause`) and `state`
  (what the worker reports at each heartbeat). Changes other than heartbeats are announced on
  `batchdesk_workers`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- The priority a new batch gets: the studio's (batchdesk db priority N), else 50.
CREATE FUNCTION batchdesk_default_priority() RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value::integer FROM studio_settings
                     WHERE key = 'default_priority' AND value ~ '^(100|[1-9]?[0-9])$'), 50)
$$;

ALTER TABLE batches
    ADD COLUMN priority integer NOT NULL DEFAULT batchdesk_default_priority()
        CONSTRAINT batches_priority_check CHECK (priority BETWEEN 0 AND 100),
    ADD COLUMN paused_at timestamptz,
    DROP CONSTRAINT batches_status_check,
    ADD CONSTRAINT batches_status_check CHECK (status IN
        ('queued', 'processing', 'paused', 'completed', 'failed', 'cancelled'));

ALTER TABLE jobs
    ADD COLUMN priority integer NOT NULL DEFAULT batchdesk_default_priority()
        CONSTRAINT jobs_priority_check CHECK (priority BETWEEN 0 AND 100),
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    -- The number of the job's latest attempt in job_attempts (0: never tried). The claim
    -- counts it up on the job row it has locked, so two claims can never take one number.
    ADD COLUMN last_attempt integer NOT NULL DEFAULT 0 CHECK (last_attempt >= 0);

-- The claim: the highest priority first, then the oldest due job; paused batches' jobs are
-- not in it at all, so however many wait, a claim reads the index's first entries.
DROP INDEX jobs_queued_idx;
CREATE INDEX jobs_claim_idx ON jobs (priority DESC, run_after, id)
    WHERE status = 'queued' AND NOT paused;

-- The status rule with the pause (mirrored in batchdesk.domain.statuses): a paused batch with
-- work left (queued jobs, or running ones finishing) is 'paused'; otherwise the counts decide
-- as before, so a paused batch whose jobs have all finished shows how it finished.
CREATE FUNCTION batch_status_for(
    queued integer, processing integer, completed integer, failed integer, cancelled integer,
    paused boolean
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN paused AND completed + failed + cancelled
                        < queued + processing + completed + failed + cancelled THEN 'paused'
        ELSE batch_status_for(queued, processing, completed, failed, cancelled)
    END
$$;

CREATE OR REPLACE FUNCTION batches_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.total_files := NEW.queued_count + NEW.processing_count + NEW.completed_count
                       + NEW.failed_count + NEW.cancelled_count;
    NEW.status := batch_status_for(NEW.queued_count, NEW.processing_count, NEW.completed_count,
                                   NEW.failed_count, NEW.cancelled_count,
                                   NEW.paused_at IS NOT NULL);
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

-- New jobs take their batch's priority and pause. The column defaults already agree unless
-- the studio default changed during the submission or the batch was changed since it was
-- made, so this usually updates nothing. It runs after the counting trigger (names fire in
-- alphabetical order), which has locked the batch rows.
CREATE FUNCTION jobs_take_batch_farm_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs j SET priority = b.priority, paused = (b.paused_at IS NOT NULL)
    FROM new_jobs n JOIN batches b ON b.id = n.batch_id
    WHERE j.id = n.id
      AND (n.priority, n.paused) IS DISTINCT FROM (b.priority, b.paused_at IS NOT NULL);
    RETURN NULL;
END
$$;

CREATE TRIGGER trigger_farm_state_on_job_insert
    AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_take_batch_farm_state();

CREATE TABLE job_attempts (
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number      integer NOT NULL CHECK (number >= 1),
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN
                    ('completed', 'failed', 'lost', 'released', 'cancelled')),
    error       text,
    log         text,
    ended_by    text,
    PRIMARY KEY (job_id, number),
    CONSTRAINT job_attempts_open_check CHECK ((finished_at IS NULL) = (outcome IS NULL))
);
-- One open attempt per job at most; closing it finds it by job.
CREATE UNIQUE INDEX job_attempts_open_idx ON job_attempts (job_id) WHERE finished_at IS NULL;
-- A worker's completed jobs today and this week (batchdesk workers).
CREATE INDEX job_attempts_completed_idx ON job_attempts (worker, finished_at)
    WHERE outcome = 'completed';

-- Jobs running at the upgrade get an open attempt, so that whatever ends them closes one.
UPDATE jobs SET last_attempt = 1 WHERE status = 'processing';
INSERT INTO job_attempts (job_id, number, worker, started_at)
SELECT id, 1, coalesce(worker, ''), coalesce(started_at, now())
FROM jobs WHERE status = 'processing';

ALTER TABLE workers
    ADD COLUMN kind text NOT NULL DEFAULT 'headless'
        CONSTRAINT workers_kind_check CHECK (kind IN ('window', 'headless')),
    ADD COLUMN desired_state text NOT NULL DEFAULT 'running'
        CONSTRAINT workers_desired_state_check CHECK (desired_state IN ('running', 'paused')),
    ADD COLUMN state text NOT NULL DEFAULT 'running'
        CONSTRAINT workers_state_check CHECK (state IN ('running', 'paused', 'stopping'));

-- Workers coming, going, and changing state reach every listener (a worker obeys a pause at
-- once where this arrives, else at its next heartbeat); heartbeats alone are not announced.
CREATE FUNCTION workers_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE w workers;
BEGIN
    IF TG_OP = 'DELETE' THEN w := OLD; ELSE w := NEW; END IF;
    PERFORM pg_notify('batchdesk_workers', json_build_object(
        'op', lower(TG_OP), 'id', w.id, 'host', w.host, 'state', w.state,
        'desired_state', w.desired_state)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER trigger_workers_notify
    AFTER INSERT OR DELETE ON workers
    FOR EACH ROW EXECUTE FUNCTION workers_notify();
CREATE TRIGGER trigger_workers_notify_change
    AFTER UPDATE ON workers
    FOR EACH ROW WHEN ((OLD.state, OLD.desired_state, OLD.threads)
                       IS DISTINCT FROM (NEW.state, NEW.desired_state, NEW.threads))
    EXECUTE FUNCTION workers_notify();
"""

# The trigger function of revision 0005, which the downgrade puts back.
BEFORE_WRITE_0005 = """
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
    IF NEW.status NOT IN ('completed', 'failed', 'cancelled') THEN
        NEW.finished_at := NULL;
    ELSIF OLD.status IN ('completed', 'failed', 'cancelled') AND OLD.finished_at IS NOT NULL THEN
        NEW.finished_at := OLD.finished_at;
    ELSE
        NEW.finished_at := now();
    END IF;
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

DOWNGRADE = r"""
DROP TRIGGER IF EXISTS trigger_workers_notify_change ON workers;
DROP TRIGGER IF EXISTS trigger_workers_notify ON workers;
DROP FUNCTION IF EXISTS workers_notify();
ALTER TABLE workers DROP COLUMN state, DROP COLUMN desired_state, DROP COLUMN kind;

DROP TABLE IF EXISTS job_attempts;

DROP TRIGGER IF EXISTS trigger_farm_state_on_job_insert ON jobs;
DROP FUNCTION IF EXISTS jobs_take_batch_farm_state();

DROP INDEX IF EXISTS jobs_claim_idx;
CREATE INDEX jobs_queued_idx ON jobs (run_after, id) WHERE status = 'queued';
ALTER TABLE jobs DROP COLUMN last_attempt, DROP COLUMN paused, DROP COLUMN priority;

-- Without the pause, paused batches are queued or processing again (the trigger derives it).
{before_write}
UPDATE batches SET paused_at = NULL WHERE status = 'paused';
ALTER TABLE batches
    DROP CONSTRAINT batches_status_check,
    ADD CONSTRAINT batches_status_check CHECK (status IN
        ('queued', 'processing', 'completed', 'failed', 'cancelled'));
ALTER TABLE batches DROP COLUMN paused_at, DROP COLUMN priority;
DROP FUNCTION IF EXISTS batchdesk_default_priority(),
    batch_status_for(integer, integer, integer, integer, integer, boolean);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE.format(before_write=BEFORE_WRITE_0005))
