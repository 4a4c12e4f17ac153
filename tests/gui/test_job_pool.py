"""Jobs in the window: the runner on a QThreadPool, events in batches, a stop that never freezes."""

import threading
import time
from dataclasses import replace
from pathlib import Path

import psycopg
from pytestqt.qtbot import QtBot

from batchdesk.jobs.job_execution import JobEvent
from batchdesk.jobs.runner import RunnerConfig
from batchdesk.storage import batch_queries
from batchdesk.storage.database import Database
from tests.factories import make_batch, make_png
from tests.integration.jobs_support import run_all_jobs
from tests.integration.test_runner import add_slow_pipeline, job_states, submit_files

from batchdesk.gui.job_pool import EventBatcher, QtTaskPool, RunnerHost

FAST = RunnerConfig(heartbeat_interval=0.5, poll_interval=0.5, liveness_timeout=3)


class EventLog:
    """Every `job_events` emission, as the window would receive them."""

    def __init__(self, host: RunnerHost) -> None:
        self.batches: list[list[JobEvent]] = []
        host.job_events.connect(self.batches.append)

    @property
    def events(self) -> list[JobEvent]:
        return [event for batch in self.batches for event in batch]

    def kinds(self, kind: str) -> int:
        return sum(1 for event in self.events if event.kind == kind)


def stop_host(qtbot: QtBot, host: RunnerHost) -> None:
    if host.enabled:
        with qtbot.waitSignal(host.stopped, timeout=60_000):
            host.stop()
    assert host.wait_stopped(60)


def test_the_qt_task_pool_runs_tasks_and_shutdown_waits_for_them(qtbot: QtBot) -> None:
    pool = QtTaskPool(3)
    finished: list[int] = []
    lock = threading.Lock()

    def task(number: int) -> None:
        time.sleep(0.05)
        with lock:
            finished.append(number)

    for number in range(6):
        pool.start(lambda number=number: task(number))
    pool.shutdown()
    assert sorted(finished) == list(range(6))
    assert pool.threads == 3
    assert pool.active == 0


def test_a_task_that_raises_is_logged_and_the_pool_goes_on(qtbot: QtBot, caplog) -> None:
    pool = QtTaskPool(1)
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("boom")

    pool.start(broken)
    pool.start(done.set)
    pool.shutdown()
    assert done.is_set()
    assert "a job task raised" in caplog.text


def test_thousands_of_events_from_threads_arrive_in_a_few_lists_in_order(qtbot: QtBot) -> None:
    batcher = EventBatcher()
    received: list[list[tuple[int, int]]] = []
    batcher.drained.connect(received.append)

    def produce(thread: int) -> None:
        for number in range(1000):
            batcher.add((thread, number))

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    qtbot.waitUntil(lambda: sum(len(batch) for batch in received) == 4000)

    assert len(received) <= 10  # one drain per timer period, not one signal per event
    items = [item for batch in received for item in batch]
    for thread in range(4):
        assert [n for t, n in items if t == thread] == list(range(1000))


def test_a_submitted_batch_runs_to_completion_on_the_window_s_pool(
    qtbot: QtBot, database: Database, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path / "in", count=5).batches[0]
    work = tmp_path / "work"
    work.mkdir()
    host = RunnerHost(database, 2, config=replace(FAST, work_dir=work))
    log = EventLog(host)

    with qtbot.waitSignal(host.started, timeout=30_000):
        host.start()
    assert host.enabled
    assert host.threads == 2
    qtbot.waitUntil(lambda: log.kinds("completed") == 5, timeout=60_000)
    stop_host(qtbot, host)

    assert log.kinds("started") == 5
    assert all(isinstance(batch_, list) and batch_ for batch_ in log.batches)
    assert {event.batch for event in log.events} == {batch.base_directory_name}
    assert host.busy == 0
    assert list(work.iterdir()) == []
    with database.connect() as connection:
        assert batch_queries.find_batch(connection, str(batch.id)).status == "completed"


def test_stop_returns_at_once_and_gives_back_the_running_jobs(
    qtbot: QtBot, database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    pipeline = add_slow_pipeline(database_conninfo, seconds=3)
    paths = [make_png(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(4)]
    batch = submit_files(database, paths, pipeline).batches[0]
    host = RunnerHost(database, 2, config=FAST)
    log = EventLog(host)
    busy: list[int] = []
    host.busy_changed.connect(busy.append)

    with qtbot.waitSignal(host.started, timeout=30_000):
        host.start()
    qtbot.waitUntil(lambda: log.kinds("started") == 2, timeout=30_000)
    assert host.busy == 2

    with qtbot.waitSignal(host.stopped, timeout=60_000):
        host.stop()
        # The stop runs on a thread of its own: the window goes on while jobs are given back.
        assert host.stopping
        assert not host.enabled
    assert host.wait_stopped(10)

    assert not host.stopping
    assert log.kinds("released") == 2
    assert busy[-1] == 0
    assert 2 in busy
    states = job_states(database_conninfo, batch.id)
    assert [status for status, _, _ in states] == ["queued"] * 4
    assert all(attempts == 0 for _, attempts, _ in states)  # given back, no attempt used
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM workers").fetchone() == (0,)


def test_set_enabled_stops_and_starts_again_in_order(
    qtbot: QtBot, database: Database, tmp_path: Path
) -> None:
    host = RunnerHost(database, 1, config=FAST)
    stops: list[bool] = []
    host.stopped.connect(lambda: stops.append(True))

    host.set_enabled(True)
    host.set_enabled(False)  # before the start has even finished: queued behind it
    host.set_enabled(True)
    qtbot.waitUntil(lambda: stops == [True], timeout=30_000)
    assert host.enabled

    log = EventLog(host)
    make_batch(database, tmp_path, count=2)
    qtbot.waitUntil(lambda: log.kinds("completed") == 2, timeout=60_000)
    stop_host(qtbot, host)
    assert stops == [True, True]


def test_a_runner_that_cannot_start_says_why(qtbot: QtBot, tmp_path: Path) -> None:
    conninfo = "host=127.0.0.1 port=9 dbname=nothing connect_timeout=2"
    unreachable = Database(conninfo, "an unreachable server")
    host = RunnerHost(unreachable, 1, config=replace(FAST, work_dir=tmp_path))

    with qtbot.waitSignal(host.failed, timeout=30_000) as blocker:
        host.start()
    assert host.wait_stopped(10)
    unreachable.close()

    assert blocker.args[0].startswith("Could not start running jobs on this workstation")
    assert not host.enabled
    assert host.busy == 0
    assert list(tmp_path.iterdir()) == []  # its working folder went with it


def test_completed_batches_are_delivered_when_a_folder_is_set(
    qtbot: QtBot, database: Database, tmp_path: Path
) -> None:
    batch = make_batch(database, tmp_path / "in", count=2).batches[0]
    run_all_jobs(database)
    folder = tmp_path / "deliveries"
    host = RunnerHost(database, 1, config=FAST, delivery_folder=folder)

    with qtbot.waitSignal(host.delivery_event, timeout=30_000) as blocker:
        host.start()
    stop_host(qtbot, host)

    event = blocker.args[0]
    assert (event.kind, event.batch) == ("delivered", batch.base_directory_name)
    delivered = folder / batch.base_directory_name
    assert sorted(p.name for p in delivered.iterdir()) == [
        "PL_DXB191_view0.png",
        "PL_DXB192_view1.png",
        "manifest.csv",
    ]
