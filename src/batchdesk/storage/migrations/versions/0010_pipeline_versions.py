"""Pipeline versions: every version of a pipeline kept, each batch bound to one, retirement.

- **`pipeline_versions`** holds every version a pipeline ever had, keyed by (name, version).
  `pipelines` stays the list of names with the newest version's description and steps (the
  head), so what reads or writes pipelines directly keeps working: a trigger numbers each change
  of the head's description or steps as the next version, and another records it as a row of
  `pipeline_versions`. Versions are never changed or deleted afterwards.
- **`batches.pipeline_version`**: the version a batch was submitted with. Its jobs run exactly
  that version, even when the pipeline is replaced while they wait. A batch inserted without one
  (an older batchdesk) gets the head's version. Existing batches get their pipeline's current
  version, the only one there was.
- **`pipelines.retired_at`**: a retired pipeline is not offered for new batches; batches already
  submitted keep running it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE pipelines ADD COLUMN retired_at timestamptz;

CREATE TABLE pipeline_versions (
    name        text NOT NULL REFERENCES pipelines (name) ON UPDATE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    description text NOT NULL DEFAULT '',
    steps       jsonb NOT NULL CHECK (jsonb_typeof(steps) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT '',
    PRIMARY KEY (name, version)
);
INSERT INTO pipeline_versions (name, version, description, steps, created_at)
    SELECT name, version, description, steps, updated_at FROM pipelines;

-- A change of the head's description or steps is the next version; nothing else changes the
-- version (a rename or a retirement keeps it).
CREATE FUNCTION pipelines_next_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.description, NEW.steps) IS DISTINCT FROM (OLD.description, OLD.steps) THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    ELSE
        NEW.version := OLD.version;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER trigger_pipelines_next_version
    BEFORE UPDATE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION pipelines_next_version();

-- Every version the head takes is kept as a row of its own.
CREATE FUNCTION pipelines_record_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pipeline_versions (name, version, description, steps)
    VALUES (NEW.name, NEW.version, NEW.description, NEW.steps)
    ON CONFLICT (name, version) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER trigger_pipelines_record_version
    AFTER INSERT OR UPDATE OF description, steps ON pipelines
    FOR EACH ROW EXECUTE FUNCTION pipelines_record_version();

-- Existing batches ran the only version there was; the default is for them alone (a constant
-- default is stored once, not written into every row) and is dropped at once.
ALTER TABLE batches ADD COLUMN pipeline_version integer NOT NULL DEFAULT 1;
ALTER TABLE batches ALTER COLUMN pipeline_version DROP DEFAULT;
ALTER TABLE batches DISABLE TRIGGER USER;  -- a backfill, not a change anyone made
UPDATE batches b SET pipeline_version = p.version
    FROM pipelines p WHERE p.name = b.pipeline AND p.version <> 1;
ALTER TABLE batches ENABLE TRIGGER USER;
ALTER TABLE batches ADD CONSTRAINT batches_pipeline_version_fkey
    FOREIGN KEY (pipeline, pipeline_version) REFERENCES pipeline_versions (name, version)
    ON UPDATE CASCADE;

-- A batch inserted without a version (an older batchdesk) runs the head's.
CREATE FUNCTION batches_take_pipeline_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.pipeline_version IS NULL THEN
        SELECT version INTO NEW.pipeline_version FROM pipelines WHERE name = NEW.pipeline;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER trigger_batches_take_pipeline_version
    BEFORE INSERT ON batches
    FOR EACH ROW EXECUTE FUNCTION batches_take_pipeline_version();
"""

DOWNGRADE = r"""
DROP TRIGGER IF EXISTS trigger_batches_take_pipeline_version ON batches;
DROP FUNCTION IF EXISTS batches_take_pipeline_version();
ALTER TABLE batches DROP CONSTRAINT IF EXISTS batches_pipeline_version_fkey;
ALTER TABLE batches DROP COLUMN IF EXISTS pipeline_version;
DROP TRIGGER IF EXISTS trigger_pipelines_record_version ON pipelines;
DROP FUNCTION IF EXISTS pipelines_record_version();
DROP TRIGGER IF EXISTS trigger_pipelines_next_version ON pipelines;
DROP FUNCTION IF EXISTS pipelines_next_version();
DROP TABLE IF EXISTS pipeline_versions;
ALTER TABLE pipelines DROP COLUMN IF EXISTS retired_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
