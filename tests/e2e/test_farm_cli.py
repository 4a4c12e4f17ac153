"""Steering the farm from the command line, with real worker processes on one database.

Priority, pause and resume, single-job requeue, the workers list and its pause/resume, and
the attempt history each job keeps: every command runs as `python -m batchdesk` in a process of
its own, and the workers are real `batchdesk worker` processes.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.processes import COMMAND_TIMEOUT, Run, environment_for
from tests.factories import make_png
from tests.integration.jobs_support import add_slow_pipeline


class Farm:
    """`batchdesk` processes on one database, and the workers started among them."""

    def __init__(self, home: Path, conninfo: str) -> None:
        self.home = home
        self.conninfo = conninfo
        self.env = environment_for(home)
        self.workers: list[subprocess.Popen[str]] = []

    def run(self, *args: str | Path) -> Run:
        argv = ("--database-url", self.conninfo, *(str(a) for a in args))
        done = subprocess.run(
            [sys.executable, "-m", "batchdesk", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Run(argv, done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str | Path) -> Run:
        run = self.run(*args)
        assert run.returncode == 0, run
        return run

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "batchdesk", "--database-url", self.conninfo, "worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.home,
        )
        self.workers.append(worker)
        return worker

    def submit(self, folder: Path, prefix: str, count: int, *options: str, seed: int = 0) -> str:
        paths = [
            make_png(folder / prefix / f"{prefix}{191 + i}_v{i}.png", seed=seed + i)
            for i in range(count)
        ]
        run = self.ok("submit", "--json", *options, *paths)
        return str(run.json()["batches"][0]["base_directory_name"])

    def show(self, batch: str) -> dict[str, Any]:
        return self.ok("show", batch, "--json").json()  # type: ignore[no-any-return]

    def live_workers(self) -> list[dict[str, Any]]:
        return self.ok("workers", "--json").json()  # type: ignore[no-any-return]

    def job_statuses(self, batch: str) -> list[str]:
        with psycopg.connect(self.conninfo) as conn:
            rows = conn.execute(
                "SELECT j.status FROM jobs j JOIN batches b ON b.id = j.batch_id "
                "WHERE b.base_directory_name = %s ORDER BY j.position",
                (batch,),
            ).fetchall()
        return [row[0] for row in rows]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = COMMAND_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def stop(worker: subprocess.Popen[str]) -> str:
    """Stop a worker as a service stop does (SIGTERM); return what it said on stderr."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=COMMAND_TIMEOUT)
    assert "Traceback" not in err, err
    return err


def one_sentence(run: Run, exit_code: int) -> str:
    assert run.returncode == exit_code, run
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert run.stdout == "", run
    return lines[0]


def assert_db_check_agrees(farm: Farm) -> None:
    check = farm.ok("db", "check")
    assert check.stdout.splitlines()[:2] == [
        "All batch counts agree with their jobs.",
        "Every running job has its open attempt, and no other job has one.",
    ]


@pytest.fixture
def farm(tmp_path: Path, database_conninfo: str) -> Iterator[Farm]:
    farm = Farm(tmp_path / "home", database_conninfo)
    farm.home.mkdir()
    try:
        yield farm
    finally:
        for worker in farm.workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=COMMAND_TIMEOUT)


@pytest.mark.slow
def test_two_workers_take_three_batches_strictly_by_priority(farm: Farm, tmp_path: Path) -> None:
    slow = add_slow_pipeline(farm.conninfo, seconds=0.3)
    batches = {
        priority: farm.submit(tmp_path, prefix, 4, "-p", slow, seed=priority)
        for priority, prefix in ((20, "LO_LOW"), (90, "HI_HIGH"), (55, "MI_MID"))
    }
    for priority, batch in batches.items():
        assert farm.ok("priority", batch, str(priority)).stdout == (
            f"{batch}: priority {priority} (was 50).\n"
        )
    # Held until both workers are up, then let go at once: they claim side by side.
    farm.ok("pause", *batches.values())
    workers = [farm.start_worker("--threads", "1") for _ in range(2)]
    wait_for(lambda: len(farm.live_workers()) == 2, "both workers to be listed")
    farm.ok("resume", *batches.values())
    wait_for(
        lambda: all(farm.job_statuses(b) == ["completed"] * 4 for b in batches.values()),
        "every job to be completed",
    )
    for worker in workers:
        stop(worker)

    attempts = sorted(
        (attempt["started_at"], priority, attempt["worker"])
        for priority, batch in batches.items()
        for job in farm.show(batch)["jobs"]
        for attempt in job["history"]
    )
    assert len(attempts) == 12
    # Each worker went down the priorities, never up.
    by_worker: dict[str, list[int]] = {}
    for _started, priority, worker in attempts:
        by_worker.setdefault(worker, []).append(priority)
    assert len(by_worker) == 2
    for priorities in by_worker.values():
        assert priorities == sorted(priorities, reverse=True)
    # Between them, no job started while one of a higher priority waited, but for the one the
    # other worker was claiming at that very moment.
    for index, (_started, priority, _worker) in enumerate(attempts):
        overtaken = [p for _s, p, _w in attempts[index + 1 :] if p > priority]
        assert len(overtaken) <= 1, attempts
    assert_db_check_agrees(farm)


@pytest.mark.slow
def test_a_pause_lets_the_running_job_finish_and_starts_nothing_more_of_that_batch(
    farm: Farm, tmp_path: Path
) -> None:
    slow = add_slow_pipeline(farm.conninfo, seconds=8)
    held = farm.submit(tmp_path, "PA_HELD", 3, "-p", slow)
    worker = farm.start_worker("--threads", "1")
    wait_for(lambda: "processing" in farm.job_statuses(held), "the worker to start a job")
    running = farm.job_statuses(held).index("processing")
    running_name = f"PA_HELD{191 + running}_v{running}.png"

    paused = farm.ok("pause", held)
    refused = farm.run("retry", held, "--job", running_name)
    later = farm.submit(tmp_path, "LA_LATER", 1)  # the same priority, submitted after
    wait_for(lambda: farm.job_statuses(later) == ["completed"], "the other batch to be run")

    assert paused.stdout == (
        f"Paused {held}: 2 queued jobs wait for `batchdesk resume`; 1 running will finish.\n"
    )
    assert one_sentence(refused, 1) == (
        f"{running_name} of {held} is running: only a finished job (failed, completed or "
        "cancelled) can be queued again."
    )
    shown = farm.show(held)
    assert (shown["status"], shown["completed_count"], shown["queued_count"]) == ("paused", 1, 2)
    assert shown["paused_at"] is not None
    listed = farm.ok("list", "--status", "paused", "--json").json()
    assert [b["base_directory_name"] for b in listed] == [held]

    resumed = farm.ok("resume", held)
    assert resumed.stdout == f"Resumed {held}: 2 queued jobs may run.\n"
    wait_for(lambda: farm.job_statuses(held) == ["completed"] * 3, "the resumed batch to finish")
    assert farm.show(held)["status"] == "completed"

    names = ["PA_HELD191_v0.png", "PA_HELD193_v2.png"]
    again = farm.ok("retry", "--job", names[0], "--job", names[1], held)
    assert again.stdout.splitlines() == [
        f"Queued {name} (completed) of {held} again, with fresh attempts." for name in names
    ]
    wait_for(lambda: farm.job_statuses(held) == ["completed"] * 3, "the jobs to run again")
    outcomes = [[a["outcome"] for a in job["history"]] for job in farm.show(held)["jobs"]]
    assert outcomes == [["completed", "completed"], ["completed"], ["completed", "completed"]]
    stop(worker)
    assert_db_check_agrees(farm)


@pytest.mark.slow
def test_workers_pause_reaches_a_worker_in_another_process(farm: Farm, tmp_path: Path) -> None:
    steered = farm.start_worker("--threads", "1")
    wait_for(lambda: len(farm.live_workers()) == 1, "the worker to be listed")
    [listed] = farm.live_workers()
    assert (listed["state"], listed["kind"], listed["threads"]) == ("running", "headless", 1)

    asked = farm.ok("workers", "pause", listed["id"])
    wait_for(lambda: farm.live_workers()[0]["state"] == "paused", "the worker to report a pause")
    held_back = farm.submit(tmp_path, "WP_WHILE", 2)
    helper = farm.start_worker("--threads", "1", "--drain")
    helper.communicate(timeout=COMMAND_TIMEOUT)

    assert asked.stdout == (
        f"Asked {listed['id']} to pause: it finishes its running jobs and takes no new ones.\n"
    )
    assert farm.job_statuses(held_back) == ["completed"] * 2
    ran_it = {a["worker"] for job in farm.show(held_back)["jobs"] for a in job["history"]}
    assert listed["id"] not in ran_it
    table = farm.ok("workers").stdout.splitlines()
    assert table[0].split() == [
        "WORKER", "KIND", "THREADS", "STATE", "HEARD", "RUNNING", "TODAY", "WEEK"
    ]  # fmt: skip
    assert table[1].split()[:4] == [listed["id"], "headless", "1", "paused"]

    farm.ok("workers", "resume", listed["host"])
    after = farm.submit(tmp_path, "WR_RESUMED", 1)
    wait_for(lambda: farm.job_statuses(after) == ["completed"], "the resumed worker to run")
    [done] = farm.live_workers()
    assert (done["state"], done["done_today"], done["done_this_week"]) == ("running", 1, 1)
    said = stop(steered)
    assert "Paused on request: running jobs finish, no new ones start." in said
    assert "Resumed on request: taking jobs again." in said
    assert farm.live_workers() == []  # a stopped worker leaves the list
    assert_db_check_agrees(farm)


# The first attempt hangs (the marker file does not exist yet, so it writes its process id
# there and sleeps); any later one copies at once.
HANG_ONCE = "\n".join(
    [
        "import os, shutil, sys, time",
        "marker = sys.argv[3]",
        "if not os.path.exists(marker):",
        "    with open(marker, 'w') as out:",
        "        out.write(str(os.getpid()))",
        "    time.sleep(600)",
        "shutil.copy(sys.argv[1], sys.argv[2])",
    ]
)


@pytest.mark.slow
def test_the_history_of_a_job_whose_worker_was_killed_says_so_and_names_the_reaper(
    farm: Farm, tmp_path: Path
) -> None:
    marker = tmp_path / "hung-tool.pid"
    steps = [
        {
            "op": "external",
            "args": [sys.executable, "-c", HANG_ONCE, "{input}", "{output}", str(marker)],
            "timeout": 900,
        },
        {"op": "output", "format": "png"},
    ]
    with psycopg.connect(farm.conninfo) as conn:
        conn.execute(
            "INSERT INTO pipelines (name, steps) VALUES ('hang-once', %s)", (json.dumps(steps),)
        )
    batch = farm.submit(tmp_path, "KI_KILLED", 1, "-p", "hang-once")
    doomed = farm.start_worker("--threads", "1")
    try:
        wait_for(marker.exists, "the first attempt to start its tool")
        [victim] = farm.live_workers()
        doomed.kill()  # SIGKILL: no goodbye, its job still says processing
        doomed.communicate(timeout=COMMAND_TIMEOUT)

        rescuer = farm.start_worker("--threads", "1", "--drain", "--liveness-timeout", "1")
        rescuer.communicate(timeout=COMMAND_TIMEOUT)
        assert rescuer.returncode == 0
    finally:
        if marker.exists():  # the killed worker's tool lives on, orphaned: end it
            wait_for(lambda: marker.read_text().strip() != "", "the tool to say who it is")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(marker.read_text()), signal.SIGKILL)

    [job] = farm.show(batch)["jobs"]
    lost, completed = job["history"]
    assert (lost["number"], lost["worker"], lost["outcome"]) == (1, victim["id"], "lost")
    assert lost["ended_by"] != victim["id"]
    assert lost["ended_by"] == completed["worker"]  # the rescuer's reaper noticed
    assert (
        lost["error"]
        == f"Worker {victim['id']} stopped responding; the job went back to the queue."
    )
    assert lost["finished_at"] is not None
    assert (completed["number"], completed["outcome"], completed["error"]) == (
        2,
        "completed",
        None,
    )
    assert (job["status"], job["last_error"]) == ("completed", None)
    assert_db_check_agrees(farm)


def test_bad_steering_gets_one_sentence_and_the_contracts_exit_code(
    farm: Farm, tmp_path: Path
) -> None:
    batch = farm.submit(tmp_path, "BI_BAD", 1)
    finished = farm.submit(tmp_path, "BF_DONE", 1, seed=5)
    farm.ok("cancel", finished)

    cases = {
        ("priority", "PL_DXB_2026-01-01_batch-9", "80"): 1,
        ("priority", batch, "101"): 2,
        ("priority", batch, "-1"): 2,
        ("priority", batch, "high"): 2,
        ("priority", batch): 2,
        ("pause", "PL_DXB_2026-01-01_batch-9"): 1,
        ("pause", batch, finished): 1,
        ("resume", "no-such-batch"): 1,
        ("retry", batch, "--job", "nope.png"): 1,
        ("workers", "pause", "no-such-host"): 1,
        ("workers", "resume", "no-such-host"): 1,
        ("workers", "stop", "x"): 2,
        ("db", "priority", "500"): 2,
        ("list", "--status", "sleeping"): 2,
    }
    said = {args: one_sentence(farm.run(*args), code) for args, code in cases.items()}

    assert (
        said[("priority", batch, "101")] == "A priority is a whole number from 0 to 100, not 101."
    )
    assert said[("pause", batch, finished)] == (
        f"{finished} is cancelled: there is nothing left in it to pause."
    )
    assert (
        "There is no live worker or host 'no-such-host'"
        in said[("workers", "pause", "no-such-host")]
    )
    assert "paused" in said[("list", "--status", "sleeping")]  # among the choices
    # Nothing was changed by any of them.
    assert (farm.show(batch)["priority"], farm.show(batch)["paused_at"]) == (50, None)
    assert farm.ok("db", "priority").stdout == (
        "New batches get priority 50; batches made before keep theirs.\n"
    )
    assert farm.ok("list", "--sort-by", "priority", "--json").json()
