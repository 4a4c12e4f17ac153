"""Job engine: workers with heartbeats, job outputs stored as files.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
-- One row per running worker (a window's thread pool or `batchdesk worker`). A worker whose
-- heartbeat is older than the liveness timeout is dead: the reaper gives its jobs back.
CREATE TABLE workers (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    threads      integer NOT NULL CHECK (threads >= 1),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- What a job produced: files stored like inputs, by content.
CREATE TABLE job_outputs (
    job_id     bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name       text NOT NULL,
    sha256     bytea NOT NULL REFERENCES blobs (sha256),
    size       bigint NOT NULL CHECK (size >= 0),
    media_type text NOT NULL,
    width      integer NOT NULL,
    height     integer NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE INDEX job_outputs_sha256_idx ON job_outputs (sha256);

-- The reaper looks for the running jobs of dead workers.
CREATE INDEX jobs_processing_worker_idx ON jobs (worker) WHERE status = 'processing';
"""

DOWNGRADE = """
DROP INDEX IF EXISTS jobs_processing_worker_idx;
DROP TABLE IF EXISTS job_outputs, workers;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
