"""Jobs a computer completed today: every worker of that computer, the studio's day."""

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from batchdesk.storage import host_activity, job_queue, worker_liveness
from batchdesk.storage.database import Database
from tests.factories import make_batch


def finish_jobs(database: Database, worker: str, count: int, *, fail: bool = False) -> list[int]:
    """Claim `count` queued jobs as `worker` and complete (or fail) them; return their ids."""
    done = []
    for _ in range(count):
        job = job_queue.claim(database, worker)
        assert job is not None
        if fail:
            job_queue.fail(database, job, "broken", retryable=False)
        else:
            assert job_queue.complete(database, job, [])
        done.append(job.id)
    return done


def completed_today(database: Database) -> int:
    with database.connect() as connection:
        return host_activity.completed_today(connection, host_activity.this_host())


def test_counts_this_computers_completions_by_any_of_its_workers(
    database: Database, tmp_path: Path
) -> None:
    make_batch(database, tmp_path, count=8)
    finish_jobs(database, worker_liveness.new_worker_id(), 2)  # a window's worker
    finish_jobs(database, worker_liveness.new_worker_id(), 1)  # a headless worker, stopped since
    finish_jobs(database, "render-node-7:4242:abcdef", 2)  # another computer
    finish_jobs(database, worker_liveness.new_worker_id(), 1, fail=True)
    job_queue.claim(database, worker_liveness.new_worker_id())  # still running

    assert completed_today(database) == 3
    with database.connect() as connection:
        assert host_activity.completed_today(connection, "render-node-7") == 2
        assert host_activity.completed_today(connection, "render-node") == 0


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", None])
def test_today_starts_at_the_studios_midnight(
    database: Database, database_conninfo: str, tmp_path: Path, zone: str | None
) -> None:
    """The day batch names use (`batchdesk db timezone`), whatever the server's zone."""
    make_batch(database, tmp_path, count=2)
    before, after = finish_jobs(database, worker_liveness.new_worker_id(), 2)
    with psycopg.connect(database_conninfo) as conn:
        if zone is not None:
            conn.execute(
                "INSERT INTO studio_settings (key, value) VALUES ('time_zone', %s)", (zone,)
            )
        today, server_zone = conn.execute(
            "SELECT batchdesk_today(), current_setting('TimeZone')"
        ).fetchone()
        midnight = datetime.combine(today, time(), ZoneInfo(zone or server_zone))
        for job_id, moment in ((before, midnight - timedelta(minutes=1)), (after, midnight)):
            conn.execute("UPDATE jobs SET finished_at = %s WHERE id = %s", (moment, job_id))

    assert completed_today(database) == 1


def test_an_index_serves_the_count(database_conninfo: str) -> None:
    with psycopg.connect(database_conninfo) as conn:
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'jobs_completed_finished_at_idx'"
        ).fetchone()
    assert "(finished_at) WHERE (status = 'completed'::text)" in definition
