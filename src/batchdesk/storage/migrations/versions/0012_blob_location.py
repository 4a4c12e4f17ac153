"""Where each stored file's bytes live: in the database (`blob_chunks`) or in the file store.

A studio may keep file bytes in a folder on its share instead of in PostgreSQL (issue 17). Every
file keeps its `blobs` row either way, so the jobs and outputs that reference it are unchanged;
`location` says where its bytes are. Every file stored before this revision is in the database,
which is the default.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.execute(
        "ALTER TABLE blobs ADD COLUMN location text NOT NULL DEFAULT 'database' "
        "CONSTRAINT blobs_location_check CHECK (location IN ('database', 'store'))"
    )


def downgrade() -> None:
    # Bytes kept in the store have no chunks: going back would lose them, so refuse.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM blobs WHERE location = 'store') THEN
                RAISE EXCEPTION 'files are kept in the file store: bring them into the database '
                    'first (batchdesk db file-store database, then batchdesk db move-files '
                    '--to database)';
            END IF;
        END $$
        """
    )
    op.execute("ALTER TABLE blobs DROP COLUMN location")
