"""Auto-delivery: when and where a completed batch was written to the delivery folder.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
-- Set by the workstation that delivered the batch; a batch completed again after a retry
-- (completed_at later than delivered_at) is delivered again.
ALTER TABLE batches
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN delivered_to text;

-- Deliverers look for recently completed batches.
CREATE INDEX batches_completed_at_idx ON batches (completed_at) WHERE status = 'completed';
"""

DOWNGRADE = """
DROP INDEX IF EXISTS batches_completed_at_idx;
ALTER TABLE batches DROP COLUMN IF EXISTS delivered_to, DROP COLUMN IF EXISTS delivered_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
