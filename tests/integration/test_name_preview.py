"""The batch-name preview names exactly what a submission made now creates, and changes nothing."""

import threading
from datetime import date
from pathlib import Path

import pytest

from batchdesk.domain.file_selection import select_files
from batchdesk.errors import Cancelled
from batchdesk.storage.database import Database
from batchdesk.storage.name_preview import preview_names
from batchdesk.storage.pool import only_row
from batchdesk.storage.submission import SubmissionRequest, allocate_counter, submit
from tests.factories import make_batch, make_pngs

DAY = date(2026, 11, 28)


def preview(database: Database, prefixes: list[str], batch_date: date | None = None) -> dict:
    with database.connect() as connection:
        return preview_names(connection, prefixes, batch_date)


def today(database: Database) -> date:
    with database.connect() as connection:
        return only_row(connection.execute("SELECT batchdesk_today()"))[0]


def counter_rows(database: Database) -> list[tuple]:
    with database.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                "SELECT customer_prefix, batch_date, last_counter FROM batch_day_counters "
                "ORDER BY customer_prefix, batch_date"
            )
        ]


def test_with_no_batch_today_each_prefix_gets_batch_1_of_the_database_s_today(
    database: Database,
) -> None:
    day = today(database).isoformat()

    names = preview(database, ["PL_DXB", "QX_ABC"])

    assert names == {"PL_DXB": f"PL_DXB_{day}_batch-1", "QX_ABC": f"QX_ABC_{day}_batch-1"}


def test_the_preview_is_the_name_the_next_submission_gets(
    database: Database, tmp_path: Path
) -> None:
    first = make_batch(database, tmp_path / "first", prefix="PL_DXB").batches[0]
    previewed = preview(database, ["PL_DXB"])["PL_DXB"]

    second = make_batch(database, tmp_path / "second", prefix="PL_DXB", seed=10).batches[0]

    assert first.base_directory_name.endswith("_batch-1")
    assert previewed == second.base_directory_name
    assert previewed.endswith("_batch-2")


def test_each_customer_and_day_counts_on_its_own(database: Database, tmp_path: Path) -> None:
    make_batch(database, tmp_path / "a", prefix="PL_DXB", batch_date=DAY)
    make_batch(database, tmp_path / "b", prefix="PL_DXB", batch_date=DAY, seed=10)
    make_batch(database, tmp_path / "c", prefix="QX_ABC", batch_date=date(2026, 11, 27), seed=20)

    assert preview(database, ["PL_DXB", "QX_ABC", "MISC"], DAY) == {
        "PL_DXB": "PL_DXB_2026-11-28_batch-3",
        "QX_ABC": "QX_ABC_2026-11-28_batch-1",
        "MISC": "MISC_2026-11-28_batch-1",
    }


def test_a_preview_takes_no_number_and_writes_nothing(database: Database, tmp_path: Path) -> None:
    make_batch(database, tmp_path, prefix="PL_DXB", batch_date=DAY)
    before = counter_rows(database)

    first = preview(database, ["PL_DXB", "QX_ABC"], DAY)
    again = preview(database, ["PL_DXB", "QX_ABC"], DAY)

    assert first == again
    assert counter_rows(database) == before == [("PL_DXB", DAY, 1)]


def test_prefixes_come_back_once_each_in_the_order_given(database: Database) -> None:
    names = preview(database, ["QX_ABC", "PL_DXB", "QX_ABC"], DAY)

    assert list(names) == ["QX_ABC", "PL_DXB"]
    assert preview(database, [], DAY) == {}


def test_a_cancelled_submission_leaves_the_preview_where_it_was(
    database: Database, tmp_path: Path
) -> None:
    make_batch(database, tmp_path / "done", prefix="PL_DXB", batch_date=DAY)
    paths = make_pngs(tmp_path / "cancelled", [f"PL_DXB{i}_v.png" for i in range(3)], seed=50)
    request = SubmissionRequest(
        files=select_files(paths).files, created_by="tester@test", batch_date=DAY
    )

    with pytest.raises(Cancelled):
        submit(database, request, cancelled=lambda: True)

    assert preview(database, ["PL_DXB"], DAY) == {"PL_DXB": "PL_DXB_2026-11-28_batch-2"}


def test_a_preview_does_not_wait_for_a_submission_holding_the_counter(
    database: Database, tmp_path: Path
) -> None:
    # A submission's transaction locks the counter row until it commits; the preview only
    # reads it, so the window never queues behind another workstation's upload.
    holding = threading.Event()
    release = threading.Event()

    def hold_the_counter() -> None:
        with database.connect() as connection:  # never committed: the number goes back
            allocate_counter(connection, "PL_DXB", DAY)
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=hold_the_counter)
    thread.start()
    try:
        assert holding.wait(30)
        with database.connect() as connection:
            connection.execute("SET lock_timeout = '2s'")
            names = preview_names(connection, ["PL_DXB"], DAY)
    finally:
        release.set()
        thread.join(30)

    assert names == {"PL_DXB": "PL_DXB_2026-11-28_batch-1"}
