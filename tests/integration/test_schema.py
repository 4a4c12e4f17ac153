"""The schema: migrations and the query-side table definitions agree; versions are guarded."""

from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from batchdesk.errors import SchemaMismatch
from batchdesk.storage import migrations_runner
from batchdesk.storage.database import Database
from batchdesk.storage.schema import metadata
from tests.database_fixtures import TestServer
from tests.factories import make_batch

# Made only where the server has pg_trgm (migration 0011), so not one of the tables' own.
OPTIONAL_INDEXES = {"batch_search_content_trgm_idx"}


def test_migrated_schema_matches_the_tables_queries_are_built_from(database: Database) -> None:
    def include_name(name: str | None, kind: str, _parents: object) -> bool:
        return not (kind == "index" and name in OPTIONAL_INDEXES)

    with migrations_runner.alembic_connection(database) as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": include_name,
            },
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_indexes_from_the_design_exist(database: Database, database_conninfo: str) -> None:
    with psycopg.connect(database_conninfo) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    definitions = {name: definition for name, definition in rows}
    assert (
        "(customer_prefix, batch_date, batch_counter)"
        in (definitions["batches_prefix_date_counter_key"])
    )
    assert "(status)" in definitions["batches_status_idx"]
    assert "(created_at DESC NULLS LAST, id DESC)" in definitions["batches_newest_first_idx"]
    assert "batches_created_at_idx" not in definitions  # the index above serves its ranges
    assert '(batch_id, "position")' in definitions["jobs_batch_id_position_key"]
    # The claim's index: queued jobs that may run, highest priority first, then the oldest.
    claim = definitions["jobs_claim_idx"]
    assert "(priority DESC, run_after, id)" in claim
    assert "WHERE ((status = 'queued'::text) AND (NOT paused))" in claim
    assert "jobs_queued_idx" not in definitions  # the claim's index replaces it


def test_the_search_index_exists_exactly_where_the_server_has_pg_trgm(
    database_conninfo: str,
) -> None:
    with psycopg.connect(database_conninfo) as conn:
        available = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'"
        ).fetchone()
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'batch_search_content_trgm_idx'"
        ).fetchone()
    if available == (1,):
        assert index is not None
        assert "USING gin (content gin_trgm_ops)" in index[0]
    else:
        assert index is None  # the embedded server's build has no pg_trgm: searches scan


def test_a_default_pipeline_exists_so_submission_works_out_of_the_box(
    database_conninfo: str,
) -> None:
    with psycopg.connect(database_conninfo) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM pipelines")]
    assert "original" in names


def test_upgrade_of_an_empty_database_installs_the_schema_and_is_idempotent(
    pg_server: TestServer,
) -> None:
    name = pg_server.create_database()
    try:
        with psycopg.connect(pg_server.conninfo(name), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        database = pg_server.open(name)
        try:
            assert migrations_runner.schema_status(database).current is None
            first = migrations_runner.upgrade(database)
            second = migrations_runner.upgrade(database)
            assert first.is_current
            assert second.is_current
            migrations_runner.require_current(database)
        finally:
            database.close()
    finally:
        pg_server.drop_database(name)


def test_a_schema_newer_than_this_program_is_refused_with_a_clear_sentence(
    database: Database, database_conninfo: str
) -> None:
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    status = migrations_runner.schema_status(database)
    assert status.is_newer
    with pytest.raises(SchemaMismatch, match="newer than this batchdesk") as caught:
        migrations_runner.upgrade(database)
    assert "install the newer batchdesk" in str(caught.value)
    with pytest.raises(SchemaMismatch):
        migrations_runner.require_current(database)
    with psycopg.connect(database_conninfo) as conn:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == ("9999_from_the_future",)


def test_downgrade_removes_everything_the_upgrade_made(pg_server: TestServer) -> None:
    from alembic import command

    name = pg_server.create_database()
    try:
        database = pg_server.open(name)
        try:
            config = migrations_runner._config()
            with migrations_runner.alembic_connection(database, begin=True) as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "base")
            with psycopg.connect(pg_server.conninfo(name)) as conn:
                leftovers = conn.execute(
                    "SELECT c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%' "
                    "UNION ALL SELECT p.proname FROM pg_proc p JOIN pg_namespace n "
                    "ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
                ).fetchall()
            assert leftovers == []
        finally:
            database.close()
    finally:
        pg_server.drop_database(name)


def test_upgrade_to_0005_moves_the_finish_time_of_failed_batches_off_completed_at(
    pg_server: TestServer, tmp_path: Path
) -> None:
    from alembic import command

    name = pg_server.create_database()
    try:
        database = pg_server.open(name)
        try:
            # Made by today's submission, then taken back to revision 0004 with the schema.
            batches = {
                status: make_batch(database, tmp_path / status, count=1, prefix=prefix)
                .batches[0]
                .id
                for status, prefix in (
                    ("completed", "AA_AAA"),
                    ("failed", "BB_BBB"),
                    ("cancelled", "CC_CCC"),
                    ("queued", "DD_DDD"),
                )
            }
            config = migrations_runner._config()
            with migrations_runner.alembic_connection(database, begin=True) as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "0004")
            # Batches as revision 0004's trigger left them: completed_at on every finished one.
            with psycopg.connect(pg_server.conninfo(name)) as conn:
                for status, batch_id in batches.items():
                    conn.execute(
                        "UPDATE jobs SET status = %s WHERE batch_id = %s", (status, batch_id)
                    )
                before = {
                    row[0]: row[1:]
                    for row in conn.execute(
                        "SELECT id, completed_at, updated_at FROM batches"
                    ).fetchall()
                }
            assert before[batches["failed"]][0] is not None

            migrations_runner.upgrade(database)

            with psycopg.connect(pg_server.conninfo(name)) as conn:
                after = {
                    row[0]: row[1:]
                    for row in conn.execute(
                        "SELECT id, completed_at, finished_at, updated_at FROM batches"
                    ).fetchall()
                }
        finally:
            database.close()
    finally:
        pg_server.drop_database(name)

    def was(status: str) -> tuple[object, object]:
        completed_at, updated_at = before[batches[status]]
        return completed_at, updated_at

    completed_at, updated_at = was("completed")
    assert after[batches["completed"]] == (completed_at, completed_at, updated_at)
    for status in ("failed", "cancelled"):
        finished_at, updated_at = was(status)
        assert after[batches[status]] == (None, finished_at, updated_at)
    assert after[batches["queued"]] == (None, None, was("queued")[1])


def test_upgrade_to_0013_keeps_every_batch_count_exact_through_job_updates(
    pg_server: TestServer, tmp_path: Path
) -> None:
    from alembic import command

    name = pg_server.create_database()
    try:
        database = pg_server.open(name)
        try:
            first = make_batch(database, tmp_path / "a", count=4, prefix="AA_AAA").batches[0].id
            second = make_batch(database, tmp_path / "b", count=3, prefix="BB_BBB").batches[0].id
            config = migrations_runner._config()
            with migrations_runner.alembic_connection(database, begin=True) as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "0012")
            with psycopg.connect(pg_server.conninfo(name), autocommit=True) as conn:
                conn.execute("UPDATE jobs SET status = 'processing' WHERE batch_id = %s", (first,))

            migrations_runner.upgrade(database)

            with psycopg.connect(pg_server.conninfo(name), autocommit=True) as conn:
                ids = [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM jobs WHERE batch_id = %s ORDER BY id", (first,)
                    ).fetchall()
                ]
                # One statement: a status change in each batch, a job moved to the other
                # batch, and rows that change nothing counted (a heartbeat).
                conn.execute(
                    "UPDATE jobs SET status = CASE WHEN id = %(done)s THEN 'completed' "
                    "WHEN id = %(failed)s THEN 'failed' WHEN batch_id = %(second)s "
                    "THEN 'cancelled' ELSE status END, "
                    "batch_id = CASE WHEN id = %(moved)s THEN %(second)s ELSE batch_id END, "
                    "position = CASE WHEN id = %(moved)s THEN 100 ELSE position END, "
                    "heartbeat_at = now()",
                    {
                        "done": ids[0],
                        "failed": ids[1],
                        "moved": ids[2],
                        "second": second,
                    },
                )
                conn.execute("UPDATE jobs SET heartbeat_at = now() WHERE id = %s", (ids[3],))
                counts = {
                    row[0]: row[1:]
                    for row in conn.execute(
                        "SELECT id, queued_count, processing_count, completed_count, "
                        "failed_count, cancelled_count, total_files, status FROM batches"
                    ).fetchall()
                }
                drift = conn.execute("SELECT count(*) FROM batch_count_drift").fetchone()
        finally:
            database.close()
    finally:
        pg_server.drop_database(name)

    assert counts[first] == (0, 1, 1, 1, 0, 3, "processing")
    # The moved job kept its status (processing) in its new batch; the others were cancelled.
    assert counts[second] == (0, 1, 0, 0, 3, 4, "processing")
    assert drift == (0,)
