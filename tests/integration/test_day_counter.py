"""Batch names are unique and gapless: 1..N per customer and day, however many ask at once."""

import multiprocessing
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from batchdesk.domain.file_selection import select_files
from batchdesk.errors import Cancelled
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection, only_row
from batchdesk.storage.submission import SubmissionRequest, allocate_counter, submit
from tests.factories import make_batch, make_png

DAY = date(2026, 11, 28)


def request_for(folder: Path, prefix: str = "PL_DXB", seed: int = 0) -> SubmissionRequest:
    """A one-file submission for `prefix` on DAY; files made with the same seed are identical."""
    path = make_png(folder / f"{prefix}191_front.png", seed=seed)
    return SubmissionRequest(
        files=select_files([path]).files, created_by="tester@test", batch_date=DAY
    )


def names_for(count: int, prefix: str = "PL_DXB", day: date = DAY) -> list[str]:
    return [f"{prefix}_{day.isoformat()}_batch-{n}" for n in range(1, count + 1)]


def names_in_database(database: Database) -> list[str]:
    with database.connect() as connection:
        rows = connection.execute(
            "SELECT base_directory_name FROM batches "
            "ORDER BY customer_prefix, batch_date, batch_counter"
        ).fetchall()
    return [row[0] for row in rows]


def by_counter(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def submit_batches(conninfo: str, folder: str, start: Any, count: int) -> None:
    """Be one workstation: open the database, then submit `count` batches once all are ready.

    Runs in child processes (spawned, so it lives at module level) and in threads alike.
    """
    database = Database(conninfo, "test")
    try:
        requests = [request_for(Path(folder) / f"b{i}", seed=i) for i in range(count)]
        start.wait(timeout=60)
        for request in requests:
            submit(database, request)
    finally:
        database.close()


def _backend_pid(connection: Connection) -> int:
    return int(only_row(connection.execute("SELECT pg_backend_pid()"))[0])


def _wait_until_blocked_by(conninfo: str, holder: int, timeout: float = 30) -> None:
    """Wait until some backend is waiting on a lock that backend `holder` holds."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as monitor:
        while time.monotonic() < deadline:
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND %s = ANY(pg_blocking_pids(pid))",
                (holder,),
            ).fetchone()
            if row and row[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError(f"nobody ever waited on a lock held by backend {holder}")


class Abandoned(Exception):
    """Raised to roll a transaction back on purpose."""


@contextmanager
def rolled_back_transaction(database: Database) -> Iterator[Connection]:
    """Yield a connection whose transaction ends in a rollback, as a failed submission's does."""
    with suppress(Abandoned), database.begin() as connection:
        yield connection
        raise Abandoned


def test_sixteen_threads_submitting_at_once_get_numbers_one_to_forty_eight(
    database: Database, tmp_path: Path
) -> None:
    threads, per_thread = 16, 3
    # Every file has the same bytes: the threads also race to store the same content.
    requests = [
        [request_for(tmp_path / f"thread{t}" / f"batch{b}") for b in range(per_thread)]
        for t in range(threads)
    ]
    start = threading.Barrier(threads)

    def submit_all(mine: list[SubmissionRequest]) -> list[str]:
        start.wait(timeout=30)
        return [submit(database, r).batches[0].base_directory_name for r in mine]

    with ThreadPoolExecutor(threads) as pool:
        names = [name for names in pool.map(submit_all, requests) for name in names]

    assert sorted(names, key=by_counter) == names_for(48)
    assert names_in_database(database) == names_for(48)
    with database.connect() as connection:
        assert only_row(connection.execute("SELECT count(*) FROM blobs"))[0] == 1


@pytest.mark.slow
def test_processes_and_threads_submitting_at_once_get_numbers_without_gaps(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(8)
    children = [
        context.Process(
            target=submit_batches, args=(database_conninfo, str(tmp_path / f"p{i}"), start, 4)
        )
        for i in range(4)
    ]
    for child in children:
        child.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(submit_batches, database_conninfo, str(tmp_path / f"t{i}"), start, 4)
                for i in range(4)
            ]
            for future in futures:
                future.result()
        for child in children:
            child.join(timeout=60)
        assert [child.exitcode for child in children] == [0, 0, 0, 0]
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()

    assert names_in_database(database) == names_for(32)


def test_a_rolled_back_allocation_uses_no_number(database: Database, tmp_path: Path) -> None:
    with rolled_back_transaction(database) as connection:
        assert allocate_counter(connection, "PL_DXB", DAY) == (DAY, 1)

    (batch,) = make_batch(database, tmp_path, count=1, batch_date=DAY).batches
    assert batch.base_directory_name == "PL_DXB_2026-11-28_batch-1"


def test_a_submission_waiting_on_a_number_that_is_rolled_back_gets_that_number(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    request = request_for(tmp_path)
    with ThreadPoolExecutor(1) as pool:
        with rolled_back_transaction(database) as connection:
            allocate_counter(connection, "PL_DXB", DAY)
            waiting = pool.submit(submit, database, request)
            _wait_until_blocked_by(database_conninfo, _backend_pid(connection))
        (batch,) = waiting.result(timeout=30).batches

    assert batch.base_directory_name == "PL_DXB_2026-11-28_batch-1"
    assert names_in_database(database) == names_for(1)


def test_a_submission_cancelled_after_its_upload_creates_no_batch_and_uses_no_number(
    database: Database, tmp_path: Path
) -> None:
    uploaded: list[bool] = []

    def progress(phase: str, done: int, total: int) -> None:
        if done == total:
            uploaded.append(True)

    with pytest.raises(Cancelled):
        submit(database, request_for(tmp_path / "cancelled"), progress, lambda: bool(uploaded))
    assert names_in_database(database) == []

    (batch,) = submit(database, request_for(tmp_path / "next")).batches
    assert batch.base_directory_name == "PL_DXB_2026-11-28_batch-1"


def test_each_customer_and_day_counts_on_its_own(database: Database, tmp_path: Path) -> None:
    next_day = DAY + timedelta(days=1)
    asked = [
        ("PL_DXB", DAY),
        ("ACME_X", DAY),
        ("PL_DXB", next_day),
        ("PL_DXB", DAY),
        ("ACME_X", DAY),
    ]

    names = [
        make_batch(database, tmp_path / str(i), 1, prefix, batch_date=day, seed=i)
        .batches[0]
        .base_directory_name
        for i, (prefix, day) in enumerate(asked)
    ]

    assert names == [
        "PL_DXB_2026-11-28_batch-1",
        "ACME_X_2026-11-28_batch-1",
        "PL_DXB_2026-11-29_batch-1",
        "PL_DXB_2026-11-28_batch-2",
        "ACME_X_2026-11-28_batch-2",
    ]


def test_the_database_refuses_a_second_batch_with_the_same_customer_day_and_number(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    make_batch(database, tmp_path, count=1, batch_date=DAY)

    with (
        psycopg.connect(database_conninfo, autocommit=True) as conn,
        pytest.raises(psycopg.errors.UniqueViolation) as refused,
    ):
        conn.execute(
            "INSERT INTO batches (customer_prefix, batch_date, batch_counter, "
            "base_directory_name, pipeline) VALUES ('PL_DXB', %s, 1, 'another name', 'original')",
            (DAY,),
        )
    assert refused.value.diag.constraint_name == "batches_prefix_date_counter_key"
