"""Initial schema: batches, jobs, content-addressed files, pipelines, day counters, triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

The SQL is written out here rather than generated so that the triggers, which carry the rules
batchdesk depends on, read top to bottom in one place. Migrations are frozen history: later
changes go into new revisions, never into this file.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE studio_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE pipelines (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    description text NOT NULL DEFAULT '',
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    steps       jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(steps) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO pipelines (name, description, steps) VALUES
    ('original', 'Keep each PNG exactly as submitted (no processing).', '[]');

CREATE TABLE batches (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_prefix     text NOT NULL,
    batch_date          date NOT NULL,
    batch_counter       integer NOT NULL CHECK (batch_counter >= 1),
    base_directory_name text NOT NULL,
    render_description  text NOT NULL DEFAULT '',
    pipeline            text NOT NULL REFERENCES pipelines (name) ON UPDATE CASCADE,
    total_files         integer NOT NULL DEFAULT 0,
    total_pipelines     integer NOT NULL DEFAULT 1,
    total_size          bigint NOT NULL DEFAULT 0,
    queued_count        integer NOT NULL DEFAULT 0 CHECK (queued_count >= 0),
    processing_count    integer NOT NULL DEFAULT 0 CHECK (processing_count >= 0),
    completed_count     integer NOT NULL DEFAULT 0 CHECK (completed_count >= 0),
    failed_count        integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    cancelled_count     integer NOT NULL DEFAULT 0 CHECK (cancelled_count >= 0),
    status              text NOT NULL DEFAULT 'queued' CHECK (status IN
                            ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    created_by          text NOT NULL DEFAULT '',
    dropbox_path        text,
    dropbox_uploaded_at timestamptz,
    monday_item_id      text,
    CONSTRAINT batches_base_directory_name_key UNIQUE (base_directory_name),
    -- Backstop for the day counter; its leading columns also serve (customer_prefix, batch_date).
    CONSTRAINT batches_prefix_date_counter_key UNIQUE (customer_prefix, batch_date, batch_counter)
);
CREATE INDEX batches_status_idx ON batches (status);
CREATE INDEX batches_created_at_idx ON batches (created_at);

-- One row per file content, keyed by its sha256; the bytes live in blob_chunks so that a
-- file of any size is written and read a chunk at a time.
CREATE TABLE blobs (
    sha256     bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    size       bigint NOT NULL CHECK (size >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blob_chunks (
    sha256      bytea NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    chunk_index integer NOT NULL CHECK (chunk_index >= 0),
    data        bytea NOT NULL,
    PRIMARY KEY (sha256, chunk_index)
);
-- PNG and JPEG bytes do not compress: store them out of line without trying.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id      uuid NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    position      integer NOT NULL CHECK (position >= 0),
    file_name     text NOT NULL,
    source_path   text NOT NULL DEFAULT '',
    input_sha256  bytea NOT NULL REFERENCES blobs (sha256),
    input_size    bigint NOT NULL CHECK (input_size >= 0),
    pipeline      text NOT NULL REFERENCES pipelines (name) ON UPDATE CASCADE,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    last_error    text,
    worker        text,
    lease_token   uuid,
    heartbeat_at  timestamptz,
    run_after     timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    -- Its leading column is the jobs(batch_id) index; it also orders a batch's jobs for paging.
    CONSTRAINT jobs_batch_id_position_key UNIQUE (batch_id, position)
);
CREATE INDEX jobs_queued_idx ON jobs (run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_input_sha256_idx ON jobs (input_sha256);

CREATE TABLE batch_day_counters (
    customer_prefix text NOT NULL,
    batch_date      date NOT NULL,
    last_counter    integer NOT NULL CHECK (last_counter >= 1),
    PRIMARY KEY (customer_prefix, batch_date)
);
"""

FUNCTIONS = r"""
-- "Today" for batch names: the database's clock in the studio's time zone (studio_settings
-- key 'time_zone'), or in the server's own TimeZone setting when none is set. Every
-- workstation therefore agrees on the date, whatever its own clock or zone says.
CREATE FUNCTION batchdesk_today() RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (now() AT TIME ZONE coalesce(
        (SELECT value FROM studio_settings WHERE key = 'time_zone'),
        current_setting('TimeZone')))::date
$$;

-- The one place the batch status rule lives (mirrored in batchdesk.domain.statuses).
CREATE FUNCTION batch_status_for(
    queued integer, processing integer, completed integer, failed integer, cancelled integer
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN queued = queued + processing + completed + failed + cancelled THEN 'queued'
        WHEN completed + failed + cancelled < queued + processing + completed + failed + cancelled
            THEN 'processing'
        WHEN failed > 0 THEN 'failed'
        WHEN cancelled = 0 THEN 'completed'
        ELSE 'cancelled'
    END
$$;

-- Every write to a batch derives total_files, status, updated_at and completed_at from the
-- counts, so no caller can set them inconsistently.
CREATE FUNCTION batches_before_write() RETURNS trigger
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

CREATE TRIGGER trigger_batches_updated_at
    BEFORE INSERT OR UPDATE ON batches
    FOR EACH ROW EXECUTE FUNCTION batches_before_write();

-- Add per-status deltas to one batch. Callers visit batches in id order so that two statements
-- touching the same batches lock them in the same order.
CREATE FUNCTION batch_add_counts(
    p_batch_id uuid, d_queued bigint, d_processing bigint, d_completed bigint,
    d_failed bigint, d_cancelled bigint, d_size bigint
) RETURNS void
LANGUAGE sql AS $$
    UPDATE batches SET
        queued_count     = queued_count + d_queued,
        processing_count = processing_count + d_processing,
        completed_count  = completed_count + d_completed,
        failed_count     = failed_count + d_failed,
        cancelled_count  = cancelled_count + d_cancelled,
        total_size       = total_size + d_size
    WHERE id = p_batch_id
$$;

-- Job triggers are statement-level with transition tables: a statement that inserts, cancels or
-- deletes a thousand jobs of one batch updates that batch's row once, by the net change.
-- Nothing here counts a batch's jobs, so the cost does not grow with the batch.
CREATE FUNCTION jobs_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE d record;
BEGIN
    FOR d IN
        SELECT batch_id,
               count(*) FILTER (WHERE status = 'queued') AS q,
               count(*) FILTER (WHERE status = 'processing') AS p,
               count(*) FILTER (WHERE status = 'completed') AS c,
               count(*) FILTER (WHERE status = 'failed') AS f,
               count(*) FILTER (WHERE status = 'cancelled') AS x,
               coalesce(sum(input_size), 0)::bigint AS size
        FROM new_jobs GROUP BY batch_id ORDER BY batch_id
    LOOP
        PERFORM batch_add_counts(d.batch_id, d.q, d.p, d.c, d.f, d.x, d.size);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION jobs_after_update() RETURNS trigger
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

CREATE FUNCTION jobs_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE d record;
BEGIN
    -- When the batch itself is being deleted (cascade) its row is already gone and the
    -- update below simply finds nothing.
    FOR d IN
        SELECT batch_id,
               count(*) FILTER (WHERE status = 'queued') AS q,
               count(*) FILTER (WHERE status = 'processing') AS p,
               count(*) FILTER (WHERE status = 'completed') AS c,
               count(*) FILTER (WHERE status = 'failed') AS f,
               count(*) FILTER (WHERE status = 'cancelled') AS x,
               coalesce(sum(input_size), 0)::bigint AS size
        FROM old_jobs GROUP BY batch_id ORDER BY batch_id
    LOOP
        PERFORM batch_add_counts(d.batch_id, -d.q, -d.p, -d.c, -d.f, -d.x, -d.size);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER trigger_batch_status_on_job_insert
    AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_after_insert();
CREATE TRIGGER trigger_batch_status_on_job_update
    AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_after_update();
CREATE TRIGGER trigger_batch_status_on_job_delete
    AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_after_delete();

-- Every committed batch change reaches every LISTENing window; PostgreSQL delivers
-- notifications only on commit, so a rolled-back change is never announced.
CREATE FUNCTION batches_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE b batches;
BEGIN
    IF TG_OP = 'DELETE' THEN b := OLD; ELSE b := NEW; END IF;
    PERFORM pg_notify('batchdesk_batches', json_build_object(
        'op', lower(TG_OP), 'id', b.id, 'status', b.status,
        'base_directory_name', b.base_directory_name)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER trigger_batches_notify
    AFTER INSERT OR UPDATE OR DELETE ON batches
    FOR EACH ROW EXECUTE FUNCTION batches_notify();

-- Repair: recount one batch from its jobs. The batch row is locked before the jobs are counted,
-- so a job change that commits meanwhile is either counted here or applies its delta after.
CREATE FUNCTION recount_batch(p_batch_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM batches WHERE id = p_batch_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE batches b SET
        queued_count = c.q, processing_count = c.p, completed_count = c.c,
        failed_count = c.f, cancelled_count = c.x, total_size = c.size
    FROM (
        SELECT count(*) FILTER (WHERE status = 'queued') AS q,
               count(*) FILTER (WHERE status = 'processing') AS p,
               count(*) FILTER (WHERE status = 'completed') AS c,
               count(*) FILTER (WHERE status = 'failed') AS f,
               count(*) FILTER (WHERE status = 'cancelled') AS x,
               coalesce(sum(input_size), 0)::bigint AS size
        FROM jobs WHERE batch_id = p_batch_id
    ) c
    WHERE b.id = p_batch_id
      AND (b.queued_count, b.processing_count, b.completed_count, b.failed_count,
           b.cancelled_count, b.total_size)
          IS DISTINCT FROM (c.q, c.p, c.c, c.f, c.x, c.size);
    RETURN FOUND;
END
$$;

-- The drift check: batches whose stored counts disagree with their jobs. Empty when healthy.
CREATE VIEW batch_count_drift AS
SELECT b.id, b.base_directory_name,
       b.queued_count, b.processing_count, b.completed_count, b.failed_count,
       b.cancelled_count, b.total_size,
       c.q AS actual_queued, c.p AS actual_processing, c.c AS actual_completed,
       c.f AS actual_failed, c.x AS actual_cancelled, c.size AS actual_total_size
FROM batches b
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE j.status = 'queued')::integer AS q,
           count(*) FILTER (WHERE j.status = 'processing')::integer AS p,
           count(*) FILTER (WHERE j.status = 'completed')::integer AS c,
           count(*) FILTER (WHERE j.status = 'failed')::integer AS f,
           count(*) FILTER (WHERE j.status = 'cancelled')::integer AS x,
           coalesce(sum(j.input_size), 0)::bigint AS size
    FROM jobs j WHERE j.batch_id = b.id
) c
WHERE (b.queued_count, b.processing_count, b.completed_count, b.failed_count,
       b.cancelled_count, b.total_size)
      IS DISTINCT FROM (c.q, c.p, c.c, c.f, c.x, c.size);
"""

DROP_ALL = """
DROP VIEW IF EXISTS batch_count_drift;
DROP TABLE IF EXISTS jobs, blob_chunks, blobs, batches, batch_day_counters, pipelines,
    studio_settings CASCADE;
DROP FUNCTION IF EXISTS recount_batch(uuid), batches_notify(), jobs_after_delete(),
    jobs_after_update(), jobs_after_insert(),
    batch_add_counts(uuid, bigint, bigint, bigint, bigint, bigint, bigint),
    batches_before_write(), batch_status_for(integer, integer, integer, integer, integer),
    batchdesk_today();
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS)


def downgrade() -> None:
    op.execute(DROP_ALL)
