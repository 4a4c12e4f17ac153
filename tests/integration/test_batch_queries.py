"""The queries behind the tree view and the dashboard: which batches, in which order, which page."""

import itertools
import json
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from batchdesk.domain.batch_query import (
    MAX_PAGE_SIZE,
    SORT_COLUMNS,
    BatchQuery,
    SortOrder,
)
from batchdesk.domain.statuses import BatchStatus
from batchdesk.errors import InvalidRequest, NotFound
from batchdesk.storage import migrations_runner
from batchdesk.storage.batch_positions import batch_positions, place_batches
from batchdesk.storage.batch_queries import (
    BatchRow,
    FilterChoices,
    batch_page,
    batch_stats,
    batches_by_ids,
    count_batches,
    customer_prefixes,
    delete_batch,
    filter_choices,
    find_batch,
    list_batches,
    list_jobs,
)
from batchdesk.storage.database import Database
from batchdesk.storage.submission import CreatedBatch
from tests.database_fixtures import TestServer
from tests.factories import make_batch

BATCH_DATE = date(2026, 11, 28)
_submissions = itertools.count(1)


def new_batch(
    database: Database,
    tmp_path: Path,
    files: int = 1,
    prefix: str = "PL_DXB",
    *,
    description: str = "test batch",
    batch_date: date = BATCH_DATE,
) -> CreatedBatch:
    """Submit one batch of `files` new PNGs, from a folder and seed no other call uses."""
    n = next(_submissions)
    result = make_batch(
        database,
        tmp_path / f"submission{n}",
        count=files,
        prefix=prefix,
        description=description,
        batch_date=batch_date,
        seed=n * 1000,
    )
    return result.batches[0]


def set_job_statuses(conninfo: str, batch_id: UUID, statuses: Sequence[str]) -> None:
    """Give a batch's jobs these statuses, in position order, in one transaction."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "UPDATE jobs SET status = v.status "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS v(status, n) "
            "WHERE jobs.batch_id = %s AND jobs.position = v.n - 1",
            (list(statuses), batch_id),
        )


def set_created_at(conninfo: str, minutes_by_batch: dict[UUID, int]) -> None:
    """Pretend each batch was created that many minutes after nine o'clock on BATCH_DATE."""
    with psycopg.connect(conninfo) as conn:
        for batch_id, minutes in minutes_by_batch.items():
            conn.execute(
                "UPDATE batches SET created_at = "
                "timestamptz '2026-11-28 09:00+00' + make_interval(mins => %s) WHERE id = %s",
                (minutes, batch_id),
            )


def names(rows: Sequence[BatchRow]) -> list[str]:
    return [row.base_directory_name for row in rows]


def names_of(*batches: CreatedBatch) -> list[str]:
    return [batch.base_directory_name for batch in batches]


def found(database: Database, **filters: Any) -> list[str]:
    """Return the names list_batches finds for `filters`; count_batches and batch_page (the
    window's and `batchdesk list`'s read) must agree."""
    query = BatchQuery(**filters)
    with database.connect() as connection:
        rows = list_batches(connection, query)
        assert count_batches(connection, query) == len(rows)
        assert batch_page(connection, query) == (rows, len(rows))
    return names(rows)


# --- list_batches: order and filters ---------------------------------------------------------


def test_batches_are_listed_newest_first_by_default(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    first, second, third = (new_batch(database, tmp_path) for _ in range(3))
    # Creation times out of submission order, so neither insertion order nor ids can pass.
    set_created_at(database_conninfo, {first.id: 10, second.id: 30, third.id: 0})

    assert found(database) == names_of(second, first, third)


def test_status_filter_takes_one_status_or_several(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    queued = new_batch(database, tmp_path)
    processing = new_batch(database, tmp_path, files=2)
    completed = new_batch(database, tmp_path)
    failed = new_batch(database, tmp_path)
    set_job_statuses(database_conninfo, processing.id, ["processing", "queued"])
    set_job_statuses(database_conninfo, completed.id, ["completed"])
    set_job_statuses(database_conninfo, failed.id, ["failed"])

    assert found(database, statuses=frozenset({BatchStatus.COMPLETED})) == names_of(completed)
    assert found(database, statuses=frozenset({BatchStatus.QUEUED})) == names_of(queued)
    both = found(database, statuses=frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED}))
    assert sorted(both) == sorted(names_of(completed, failed))
    assert found(database, statuses=frozenset({BatchStatus.CANCELLED})) == []
    assert len(found(database)) == 4


def test_customer_filter_picks_exactly_that_customer(database: Database, tmp_path: Path) -> None:
    dxb = [new_batch(database, tmp_path, prefix="PL_DXB") for _ in range(2)]
    dx = new_batch(database, tmp_path, prefix="PL_DX")
    new_batch(database, tmp_path, prefix="AC_ME")

    assert sorted(found(database, customer_prefix="PL_DXB")) == sorted(names_of(*dxb))
    # PL_DX is a customer of its own, not the start of PL_DXB.
    assert found(database, customer_prefix="PL_DX") == names_of(dx)
    assert found(database, customer_prefix="NO_SUCH") == []


def test_text_filter_matches_name_or_description_ignoring_case(
    database: Database, tmp_path: Path
) -> None:
    catalogue = new_batch(database, tmp_path, description="Summer Catalogue")
    acme = new_batch(database, tmp_path, prefix="AC_ME", description="plain")
    second_dxb = new_batch(database, tmp_path, description="plain")

    assert found(database, text="CATALOGUE") == names_of(catalogue)
    assert found(database, text="summer cat") == names_of(catalogue)
    assert found(database, text="ac_me") == names_of(acme)
    assert found(database, text="pl_dxb_2026-11-28_BATCH-2") == names_of(second_dxb)
    assert found(database, text="autumn") == []


def test_text_filter_ignores_case_of_accented_letters_too(
    database: Database, tmp_path: Path
) -> None:
    creme = new_batch(database, tmp_path, description="Crème brûlée set")
    new_batch(database, tmp_path, description="creme brulee set")

    assert found(database, text="CRÈME BRÛLÉE") == names_of(creme)


def test_a_search_served_by_the_trigram_index_finds_what_the_scan_finds_in_any_script(
    database: Database, tmp_path: Path
) -> None:
    aero = new_batch(database, tmp_path, description="ÆRØ ferries, Straße")
    lodz = new_batch(database, tmp_path, description="Łódź showroom")
    athens = new_batch(database, tmp_path, description="ΑΘΗΝΑ lobby")
    plain = new_batch(database, tmp_path, description="plain")
    searches = {
        "ærø": names_of(aero),
        "STRASSE": [],  # lower() maps letters one to one: ß is not "ss"
        "straße": names_of(aero),
        "ŁÓDŹ SHOW": names_of(lodz),
        "αθηνα": names_of(athens),
        "_view0": names_of(plain, athens, lodz, aero),  # file names, newest first
        "qz": [],  # shorter than a trigram
        "no such": [],
    }

    with database.connect() as connection:
        scanned = {text: page_names(connection, text) for text in searches}
        # Small tables are scanned; make the planner use the index where there is one.
        connection.execute("SET LOCAL enable_seqscan = off")
        indexed = {text: page_names(connection, text) for text in searches}
        plan = "\n".join(
            row[0]
            for row in connection.execute(
                "EXPLAIN SELECT batch_id FROM batch_search WHERE content LIKE '%ærø%'"
            )
        )

    assert scanned == searches
    assert indexed == searches
    has_index = connection_has_trigram_index(database)
    assert ("batch_search_content_trgm_idx" in plan) == has_index


def page_names(connection: Any, text: str) -> list[str]:
    rows, _total = batch_page(connection, BatchQuery(text=text))
    return [row.base_directory_name for row in rows]


def connection_has_trigram_index(database: Database) -> bool:
    with database.connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'batch_search_content_trgm_idx'"
        ).fetchone()
    return bool(row and row[0])


def test_text_filter_takes_percent_underscore_and_backslash_literally(
    database: Database, tmp_path: Path
) -> None:
    percent = new_batch(database, tmp_path, description="50%_off")
    new_batch(database, tmp_path, description="500 off")
    windows = new_batch(database, tmp_path, description=r"C:\renders\new")
    new_batch(database, tmp_path, description="renders only")
    new_batch(database, tmp_path, description="plain")

    assert found(database, text="50%_") == names_of(percent)
    assert found(database, text="%") == names_of(percent)
    assert found(database, text="_off") == names_of(percent)
    assert found(database, text=r"\renders") == names_of(windows)
    assert found(database, text="\\") == names_of(windows)


def test_text_filter_matches_the_file_names_of_a_batchs_jobs(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    # make_batch names files PREFIX191_view0.png, PREFIX192_view1.png, ...
    three = new_batch(database, tmp_path, files=3, description="plain")
    one = new_batch(database, tmp_path, files=1, description="plain")

    assert found(database, text="VIEW2.PNG") == names_of(three)
    assert found(database, text="_view0") == names_of(one, three)  # newest first
    # A job added later (say by a script) is found too.
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline)"
            " SELECT batch_id, 1, 'Hero_Shot_Ünïcode.png', input_sha256, input_size, pipeline"
            " FROM jobs WHERE batch_id = %s",
            (one.id,),
        )
    assert found(database, text="hero_shot_üNÏ") == names_of(one)


def test_search_text_follows_a_new_description_and_leaves_with_its_batch(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = new_batch(database, tmp_path, files=2, description="first words")
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "UPDATE batches SET render_description = 'Other Words' WHERE id = %s", (batch.id,)
        )

    assert found(database, text="first words") == []
    assert found(database, text="other words") == names_of(batch)
    assert found(database, text="view1") == names_of(batch)  # its file names stay
    with database.begin() as connection:
        delete_batch(connection, batch.id)
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM batch_search").fetchone() == (0,)


def test_batches_made_before_the_search_table_are_found_by_file_name_after_the_upgrade(
    pg_server: TestServer, tmp_path: Path
) -> None:
    from alembic import command

    name = pg_server.create_database()
    database = pg_server.open(name)
    try:
        # Submitted by today's code; taking the schema back to 0007 drops its searchable text.
        older = new_batch(database, tmp_path, files=2, description="from before")
        config = migrations_runner._config()
        with migrations_runner.alembic_connection(database, begin=True) as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0007")

        migrations_runner.upgrade(database)

        assert found(database, text="VIEW1") == names_of(older)
        assert found(database, text="before") == names_of(older)
    finally:
        database.close()
        pg_server.drop_database(name)


def test_who_pipeline_and_creation_time_filters(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    early, mid, late = (new_batch(database, tmp_path) for _ in range(3))
    set_created_at(database_conninfo, {early.id: 0, mid.id: 60, late.id: 24 * 60})  # late: 29th
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("INSERT INTO pipelines (name) VALUES ('thumbs')")
        conn.execute(
            "UPDATE batches SET created_by = 'ann@ws1', pipeline = 'thumbs' WHERE id = %s",
            (mid.id,),
        )
    nine = datetime.fromisoformat("2026-11-28T09:00+00:00")
    ten = datetime.fromisoformat("2026-11-28T10:00+00:00")

    assert found(database, created_by="ann@ws1") == names_of(mid)
    assert found(database, created_by="ann") == []  # a person, not a part of a name
    assert found(database, pipeline="thumbs") == names_of(mid)
    assert found(database, pipeline="original") == names_of(late, early)
    assert found(database, created_from=ten) == names_of(late, mid)  # inclusive
    assert found(database, created_before=ten) == names_of(early)  # exclusive
    assert found(database, created_from=nine, created_before=ten) == names_of(early)
    assert found(database, created_from=nine, created_by="ann@ws1") == names_of(mid)


def test_finished_from_finds_batches_by_when_they_finished_not_when_created(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    old_failed_now, failed_long_ago, _still_queued = (
        new_batch(database, tmp_path) for _ in range(3)
    )
    set_created_at(database_conninfo, {old_failed_now.id: 0})  # created days ago
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "UPDATE jobs SET status = 'failed', last_error = 'Step 1 (fit) failed.'"
            " WHERE batch_id = ANY(%s)",
            ([old_failed_now.id, failed_long_ago.id],),
        )
        # The triggers stamp finished_at with now(); only a restore could write an old one.
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE batches SET finished_at = now() - interval '3 days' WHERE id = %s",
            (failed_long_ago.id,),
        )
    since = datetime.now().astimezone() - timedelta(hours=1)

    assert found(database, finished_from=since) == names_of(old_failed_now)
    assert found(database, finished_from=since - timedelta(days=4)) == names_of(
        failed_long_ago, old_failed_now
    )


def test_filter_choices_list_each_customer_submitter_and_pipeline_once(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    with database.connect() as connection:
        assert filter_choices(connection) == FilterChoices((), (), ())
    for prefix in ("ZZ_TOP", "AC_ME", "ZZ_TOP"):
        new_batch(database, tmp_path, prefix=prefix)
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("UPDATE batches SET created_by = 'bo@ws2' WHERE customer_prefix = 'AC_ME'")

    with database.connect() as connection:
        choices = filter_choices(connection)

    assert choices.customers == ("AC_ME", "ZZ_TOP")
    assert choices.creators == ("bo@ws2", "tester@test")
    assert choices.pipelines == ("original",)


def test_filters_combine(database: Database, database_conninfo: str, tmp_path: Path) -> None:
    wanted = new_batch(database, tmp_path, description="summer shoot")
    other_text = new_batch(database, tmp_path, description="winter shoot")
    new_batch(database, tmp_path, description="summer shoot")  # still queued
    other_customer = new_batch(database, tmp_path, prefix="AC_ME", description="summer shoot")
    for batch in (wanted, other_text, other_customer):
        set_job_statuses(database_conninfo, batch.id, ["completed"])

    assert found(
        database,
        statuses=frozenset({BatchStatus.COMPLETED}),
        customer_prefix="PL_DXB",
        text="SUMMER",
    ) == names_of(wanted)


# --- sorting ---------------------------------------------------------------------------------

# Five batches that every sortable column puts in a different order (some with ties).
# (prefix, day in November, description, created_by, pipeline, minutes after nine, job statuses)
SORTABLE_BATCHES = [
    ("CC_X", 3, "delta", "dan@ws", "beta", 30, ["completed", "completed"]),
    ("AA_X", 5, "bravo", "eve@ws", "alpha", 10, ["completed", "processing", "queued"]),
    ("EE_X", 1, "echo", "bob@ws", "original", 40, ["failed"]),
    ("DD_X", 4, "alpha", "ann@ws", "beta", 0, ["queued"] * 4),
    ("BB_X", 2, "charlie", "cat@ws", "alpha", 20, ["cancelled"] * 5),
    # A second completed batch: completed_at is empty for every other status.
    ("FF_X", 6, "foxtrot", "fay@ws", "original", 50, ["completed"]),
]


def sort_value(row: BatchRow, column: str) -> Any:
    if column == "progress":
        return row.finished_count / max(row.total_files, 1)
    return getattr(row, column)


def sorted_in_python(rows: Sequence[BatchRow], column: str, order: SortOrder) -> list[str]:
    """Sort as the tree promises: by the column, nulls as the smallest value, ties by id."""

    def key(row: BatchRow) -> tuple[tuple[bool, Any], UUID]:
        value = sort_value(row, column)
        return (value is not None, value), row.id

    return names(sorted(rows, key=key, reverse=order is SortOrder.DESC))


def test_every_sort_column_sorts_both_ways(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("INSERT INTO pipelines (name) VALUES ('alpha'), ('beta')")
    for prefix, day, description, created_by, pipeline, minutes, statuses in SORTABLE_BATCHES:
        batch = new_batch(
            database,
            tmp_path,
            len(statuses),
            prefix,
            description=description,
            batch_date=date(2026, 11, day),
        )
        with psycopg.connect(database_conninfo) as conn:
            conn.execute(
                "UPDATE batches SET created_by = %s, pipeline = %s, priority = %s WHERE id = %s",
                (created_by, pipeline, day * 17 % 100, batch.id),  # an order of its own
            )
        set_created_at(database_conninfo, {batch.id: minutes})
        # One transaction per batch, so finished batches finish at different moments.
        set_job_statuses(database_conninfo, batch.id, statuses)
    with psycopg.connect(database_conninfo) as conn:
        # One big render, so that the order by size differs from the order by number of files.
        conn.execute("UPDATE jobs SET input_size = 50000000 WHERE file_name LIKE 'EE_X%'")

    with database.connect() as connection:
        rows = list_batches(connection, BatchQuery())
        assert all(len({sort_value(row, column) for row in rows}) >= 3 for column in SORT_COLUMNS)
        wrong = [
            f"{column} {order}"
            for column in SORT_COLUMNS
            for order in SortOrder
            if names(list_batches(connection, BatchQuery(sort_by=column, order=order)))
            != sorted_in_python(rows, column, order)
        ]
    assert wrong == []


def test_a_sort_column_outside_the_list_is_refused_before_any_sql(
    database: Database, tmp_path: Path
) -> None:
    batch = new_batch(database, tmp_path)

    with pytest.raises(InvalidRequest, match=r"Cannot sort batches by .*choose one of created_at"):
        BatchQuery(sort_by="status; DROP TABLE batches")

    assert found(database) == names_of(batch)


# --- paging ----------------------------------------------------------------------------------


def test_pages_are_disjoint_cover_every_batch_and_keep_the_order(
    database: Database, tmp_path: Path
) -> None:
    for _ in range(25):
        new_batch(database, tmp_path)

    with database.connect() as connection:
        everything = names(list_batches(connection, BatchQuery(limit=MAX_PAGE_SIZE)))
        pages = [
            names(list_batches(connection, BatchQuery(limit=10, offset=offset)))
            for offset in (0, 10, 20)
        ]
        past_the_end = list_batches(connection, BatchQuery(limit=10, offset=30))

    assert [len(page) for page in pages] == [10, 10, 5]
    assert pages[0] + pages[1] + pages[2] == everything
    assert len(set(everything)) == 25
    assert past_the_end == []


def test_a_paged_search_gives_each_page_with_the_number_of_all_matches(
    database: Database, tmp_path: Path
) -> None:
    for n in range(12):
        new_batch(database, tmp_path, description="Oslo sofa" if n % 2 else "lamp")
    pages = []
    with database.connect() as connection:
        for offset in (0, 4, 8):
            pages.append(batch_page(connection, BatchQuery(text="SOFA", limit=4, offset=offset)))
        everything = list_batches(connection, BatchQuery(text="sofa"))

    assert [(len(rows), total) for rows, total in pages] == [(4, 6), (2, 6), (0, 6)]
    assert pages[0][0] + pages[1][0] == everything
    with database.connect() as connection:
        assert batch_page(connection, BatchQuery(text="no such batch")) == ([], 0)


@pytest.mark.parametrize(
    ("limit", "offset"),
    [(0, 0), (MAX_PAGE_SIZE + 1, 0), (10, -1)],
    ids=["limit-0", "limit-10001", "negative-offset"],
)
def test_a_page_out_of_range_is_an_invalid_request(limit: int, offset: int) -> None:
    with pytest.raises(InvalidRequest, match="page"):
        BatchQuery(limit=limit, offset=offset)


# --- find_batch ------------------------------------------------------------------------------


def test_find_batch_by_id_or_by_name(database: Database, tmp_path: Path) -> None:
    batch = new_batch(database, tmp_path)
    new_batch(database, tmp_path)

    with database.connect() as connection:
        by_id = find_batch(connection, str(batch.id))
        by_upper_case_id = find_batch(connection, str(batch.id).upper())
        by_name = find_batch(connection, batch.base_directory_name)
        by_pasted_name = find_batch(connection, f"  {batch.base_directory_name}\n")

    assert by_id.base_directory_name == batch.base_directory_name
    assert by_upper_case_id.id == by_name.id == by_pasted_name.id == batch.id


UNKNOWN_REFERENCES = [
    ("PL_DXB_2026-11-28_batch-99", "There is no batch 'PL_DXB_2026-11-28_batch-99'."),
    (
        "6f1c1a0e-8d3b-4c1e-9a7e-2b5d0c9e4f11",
        "There is no batch '6f1c1a0e-8d3b-4c1e-9a7e-2b5d0c9e4f11'.",
    ),
    (
        "the renders from yesterday",
        "There is no batch 'the renders from yesterday' "
        "(give a batch id or a name like PL_DXB_2026-11-28_batch-3).",
    ),
    ("", "There is no batch '' (give a batch id or a name like"),
]


def test_an_unknown_batch_is_not_found_with_a_sentence_saying_so(
    database: Database, tmp_path: Path
) -> None:
    new_batch(database, tmp_path)

    with database.connect() as connection:
        for reference, message in UNKNOWN_REFERENCES:
            with pytest.raises(NotFound, match=re.escape(message)):
                find_batch(connection, reference)


def test_a_reference_with_a_nul_character_is_not_found_rather_than_a_database_error(
    database: Database, tmp_path: Path
) -> None:
    new_batch(database, tmp_path)

    with database.connect() as connection, pytest.raises(NotFound, match="There is no batch"):
        find_batch(connection, "PL_DXB\x00")


# --- list_jobs -------------------------------------------------------------------------------


def test_jobs_are_listed_in_position_order_page_by_page(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = new_batch(database, tmp_path, files=5)
    new_batch(database, tmp_path, files=2)
    with database.connect() as connection:
        submitted = list_jobs(connection, batch.id)
    with psycopg.connect(database_conninfo) as conn:
        # Reverse the positions, so that position order and id order disagree.
        conn.execute("UPDATE jobs SET position = 100 - position WHERE batch_id = %s", (batch.id,))

    with database.connect() as connection:
        jobs = list_jobs(connection, batch.id)
        page = list_jobs(connection, batch.id, offset=1, limit=2)
        past_the_end = list_jobs(connection, batch.id, offset=5, limit=2)

    assert [job.position for job in submitted] == [0, 1, 2, 3, 4]
    assert [job.position for job in jobs] == [96, 97, 98, 99, 100]
    assert [job.id for job in jobs] == [job.id for job in reversed(submitted)]
    assert page == jobs[1:3]
    assert past_the_end == []


def test_jobs_can_be_listed_by_status_a_page_of_those_at_a_time(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = new_batch(database, tmp_path, files=6)
    set_job_statuses(
        database_conninfo,
        batch.id,
        ["completed", "failed", "completed", "queued", "failed", "cancelled"],
    )

    with database.connect() as connection:
        failed = list_jobs(connection, batch.id, statuses={"failed"})
        unfinished = list_jobs(connection, batch.id, statuses={"failed", "queued", "cancelled"})
        second_page = list_jobs(connection, batch.id, statuses={"failed"}, offset=1, limit=5)

    assert [job.position for job in failed] == [1, 4]
    assert [job.position for job in unfinished] == [1, 3, 4, 5]
    assert second_page == failed[1:]


# --- dashboard -------------------------------------------------------------------------------

ORIGINAL_STATS_FIELDS = {
    "total_batches",
    "queued",
    "processing",
    "completed",
    "failed",
    "total_files_all_time",
    "avg_files_per_batch",
    "max_files_in_batch",
}


def test_stats_of_an_empty_database_are_zeros(database: Database) -> None:
    with database.connect() as connection:
        stats = batch_stats(connection).as_json()

    assert set(stats) == ORIGINAL_STATS_FIELDS | {"cancelled", "paused"}
    assert json.loads(json.dumps(stats)) == dict.fromkeys(stats, 0)
    assert isinstance(stats["avg_files_per_batch"], float)


def test_stats_count_batches_by_status_and_their_files(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    for files, statuses in [
        (1, ["failed"]),
        (2, ["completed", "completed"]),
        (4, None),
        (2, ["processing", "queued"]),
        (1, ["cancelled"]),
        (1, None),
    ]:
        batch = new_batch(database, tmp_path, files=files)
        if statuses:
            set_job_statuses(database_conninfo, batch.id, statuses)

    with database.connect() as connection:
        stats = batch_stats(connection).as_json()

    assert stats == {
        "total_batches": 6,
        "queued": 2,
        "processing": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
        "paused": 0,
        "total_files_all_time": 11,
        "avg_files_per_batch": 1.8,  # 11 / 6, rounded to one decimal
        "max_files_in_batch": 4,
    }


def test_customer_prefixes_are_distinct_and_sorted(database: Database, tmp_path: Path) -> None:
    with database.connect() as connection:
        assert customer_prefixes(connection) == []
    for prefix in ("PL_DXB", "AC_ME", "PL_DXB", "ZZ_TOP"):
        new_batch(database, tmp_path, prefix=prefix)

    with database.connect() as connection:
        assert customer_prefixes(connection) == ["AC_ME", "PL_DXB", "ZZ_TOP"]


# --- rows as JSON, and deleting --------------------------------------------------------------


def table_columns(conninfo: str, table: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        ).fetchall()
    return {row[0] for row in rows}


def test_batch_and_job_rows_as_json_use_the_tables_field_names(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = new_batch(database, tmp_path, files=2)
    set_job_statuses(database_conninfo, batch.id, ["completed", "failed"])
    with database.connect() as connection:
        row = find_batch(connection, str(batch.id))
        job = list_jobs(connection, batch.id)[0]

    batch_json = json.loads(json.dumps(row.as_json()))
    job_json = json.loads(json.dumps(job.as_json()))

    assert batch_json == row.as_json()
    assert job_json == job.as_json()
    assert set(batch_json) <= table_columns(database_conninfo, "batches")
    assert set(job_json) <= table_columns(database_conninfo, "jobs")
    # What the original system's list and detail views showed.
    assert {"base_directory_name", "render_description", "total_files", "status"} <= set(batch_json)
    assert {"id", "file_name", "status", "created_at"} <= set(job_json)
    assert batch_json["id"] == str(batch.id)
    assert batch_json["batch_date"] == "2026-11-28"
    assert batch_json["completed_at"] is None  # it failed
    assert datetime.fromisoformat(batch_json["finished_at"]) == row.finished_at
    assert datetime.fromisoformat(job_json["created_at"]) == job.created_at
    assert len(bytes.fromhex(job_json["input_sha256"])) == 32


def test_deleting_a_batch_reports_the_jobs_it_interrupted(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = new_batch(database, tmp_path, files=3)
    kept = new_batch(database, tmp_path)
    set_job_statuses(database_conninfo, batch.id, ["processing", "completed", "queued"])

    with database.begin() as connection:
        deleted = delete_batch(connection, batch.id)

    assert (deleted.id, deleted.base_directory_name) == (batch.id, batch.base_directory_name)
    assert (deleted.total_files, deleted.interrupted_jobs) == (3, 1)
    assert found(database) == names_of(kept)
    with database.connect() as connection:
        assert list_jobs(connection, batch.id) == []


# --- place_batches: where changed batches stand in a list ------------------------------------


def test_placed_batches_stand_where_list_batches_puts_them_in_every_order(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batches = [
        new_batch(database, tmp_path, files, prefix, description=description)
        for files, prefix, description in [
            (3, "PL_DXB", "delta"),
            (1, "AC_ME", "alpha"),
            (2, "PL_DXB", "charlie"),
            (4, "ZZ_TOP", "bravo"),
        ]
    ]
    set_created_at(
        database_conninfo, {b.id: m for b, m in zip(batches, [20, 0, 30, 10], strict=True)}
    )
    # completed_at stays NULL for most: nulls must land where list_batches puts them.
    set_job_statuses(database_conninfo, batches[1].id, ["completed"])
    set_job_statuses(database_conninfo, batches[2].id, ["failed", "processing"])
    asked = [batches[0].id, batches[2].id, batches[3].id]
    queries = [
        BatchQuery(sort_by=column, order=order) for column in SORT_COLUMNS for order in SortOrder
    ] + [BatchQuery(customer_prefix="PL_DXB", sort_by="total_files", order=SortOrder.ASC)]

    with database.connect() as connection:
        for query in queries:
            listed = [row.id for row in list_batches(connection, query)]
            placed = place_batches(connection, query, asked)
            expected = sorted((listed.index(i), i) for i in asked if i in listed)
            assert [(p.position, p.batch.id) for p in placed] == expected, query
            positions = batch_positions(connection, query, asked)
            assert sorted((position, i) for i, position in positions.items()) == expected


def test_placing_leaves_out_batches_that_are_gone_or_do_not_match(
    database: Database, tmp_path: Path
) -> None:
    kept = new_batch(database, tmp_path, prefix="AC_ME")
    other_customer = new_batch(database, tmp_path, prefix="PL_DXB")
    gone = new_batch(database, tmp_path, prefix="AC_ME")
    with database.begin() as connection:
        delete_batch(connection, gone.id)

    with database.connect() as connection:
        query = BatchQuery(customer_prefix="AC_ME")
        placed = place_batches(connection, query, {kept.id, other_customer.id, gone.id})
        assert [(p.position, p.batch.base_directory_name) for p in placed] == [
            (0, kept.base_directory_name)
        ]
        assert place_batches(connection, query, set()) == []
        assert batch_positions(connection, query, [kept.id, gone.id]) == {kept.id: 0}


def test_batches_by_ids_returns_those_that_still_exist(database: Database, tmp_path: Path) -> None:
    first, second, gone = (new_batch(database, tmp_path) for _ in range(3))
    with database.begin() as connection:
        delete_batch(connection, gone.id)

    with database.connect() as connection:
        rows = batches_by_ids(connection, [second.id, gone.id, first.id])
        assert batches_by_ids(connection, []) == []

    assert [row.id for row in rows] == sorted([first.id, second.id])
