"""A CRC-32 for each file kept in the file store, checked when the file is read.

A file in the store is named by its sha256, and every read used to check the bytes against it:
0.56 CPU-seconds per GB here, the largest part of an export's time and of a worker's fetch
(bench/README.md, issue 17). What a read guards against is a damaged file (a bad disk, a copy
cut short, a file replaced by hand), which a CRC-32 with the size finds as surely, at 0.03
seconds per GB (zlib-ng). It is computed where the bytes are hashed anyway, when a file is
written to the store; `batchdesk db check --files` still checks every file's sha256 too.

NULL for files in the database and for store files written before this revision: those are
checked by their sha256 when read, as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No default: PostgreSQL adds the column without rewriting the table.
    op.execute(
        "ALTER TABLE blobs ADD COLUMN crc32 bigint "
        "CONSTRAINT blobs_crc32_check CHECK (crc32 BETWEEN 0 AND 4294967295)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE blobs DROP COLUMN crc32")
