"""Ctrl+C in `batchdesk submit` says what it left; `db check` and `db gc` find and remove it."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from batchdesk.domain.units import format_size
from tests.e2e.processes import COMMAND_TIMEOUT, environment_for, run_together
from tests.factories import make_png


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def wait_for_lock_waiter(conninfo: str, timeout: float = COMMAND_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as monitor:
        while time.monotonic() < deadline:
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the submission never waited for its batch number")


def counts(conninfo: str) -> tuple[int, int]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM blobs)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.mark.slow
def test_ctrl_c_after_the_upload_says_what_stays_and_db_gc_removes_it(
    home: Path, database_conninfo: str
) -> None:
    paths = [make_png(home / "in" / f"PL_DXB19{i}_v.png", (64, 64), seed=i) for i in range(2)]
    size = sum(p.stat().st_size for p in paths)
    database = ("--database-url", database_conninfo)

    with psycopg.connect(database_conninfo) as other:
        # Another workstation is taking PL_DXB's next number: the submission, its files
        # stored, waits in the transaction that would create its batch.
        other.execute(
            "INSERT INTO batch_day_counters (customer_prefix, batch_date, last_counter) "
            "VALUES ('PL_DXB', batchdesk_today(), 1)"
        )
        submission = subprocess.Popen(
            [sys.executable, "-m", "batchdesk", *database, "submit", *paths],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            env=environment_for(home),
            cwd=home,
        )
        try:
            wait_for_lock_waiter(database_conninfo)
            submission.send_signal(signal.SIGINT)
            out, err = submission.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            if submission.poll() is None:
                submission.kill()
                submission.communicate()
        other.rollback()

    assert (submission.returncode, out) == (130, "")
    assert err == (
        "Interrupted; a batch is created whole or not at all, and the files it had already "
        "stored are removed by `batchdesk db gc` once they are an hour old.\n"
    )
    assert counts(database_conninfo) == (0, 2)

    check, gc_now = run_together(home, (*database, "db", "check"), (*database, "db", "gc"))
    assert check.returncode == 0, check
    assert check.stdout.splitlines() == [
        "All batch counts agree with their jobs.",
        "Every running job has its open attempt, and no other job has one.",
        f"2 stored files ({format_size(size)}) are used by no job: 2 uploaded in the last hour, "
        "which a submission may still be using.",
    ]
    assert gc_now.stdout == (
        "Nothing to delete: every stored file over an hour old is used by a job.\n"
        f"Kept 2 stored files ({format_size(size)}) no job uses yet, uploaded in the last "
        "hour: a submission may still be using them.\n"
    )

    with psycopg.connect(database_conninfo) as conn:  # an hour later
        conn.execute("UPDATE blobs SET created_at = created_at - interval '61 minutes'")
    [dry] = run_together(home, (*database, "db", "gc"))
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout == (
        f"Would delete 2 stored files ({format_size(size)}) no job uses, uploaded over an hour "
        "ago; `batchdesk db gc --yes` deletes them.\n"
    )
    assert counts(database_conninfo) == (0, 2)

    [done] = run_together(home, (*database, "db", "gc", "--yes", "--json"))
    assert done.returncode == 0, done
    assert json.loads(done.stdout) == {
        "deleted": True,
        "files": 2,
        "bytes": size,
        "recent_files": 0,
        "recent_bytes": 0,
        "file_store": None,
    }
    assert counts(database_conninfo) == (0, 0)
