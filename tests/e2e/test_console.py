"""What the command line prints on a terminal, end to end with real processes.

- Text that came from people or files (descriptions, file names, errors, who submitted) is
  printed with its terminal control characters made visible (`\\x1b`, `\\u202e`): a name can
  neither recolour the terminal, clear it, nor reorder a table's columns. `--json` is exact.
- stderr holds the program's own sentences (and the worker's event lines) and nothing else:
  warnings and log lines of libraries and of batchdesk itself go to the log file.
- `--threads` and the settings file's `worker_threads` take 1 to 64, else one sentence.
"""

import json
import os
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
from psycopg import sql

from batchdesk.settings import MAX_WORKER_THREADS
from tests.database_fixtures import TestServer
from tests.e2e.processes import COMMAND_TIMEOUT, Run, environment_for, run_together
from tests.factories import make_damaged_png, make_png

ESC = "\x1b"
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reorders what follows it on the line
HOSTILE = f"{ESC}[2J{ESC}]0;pwned{ESC}\\ {RLO}gnp.exe"  # clear screen, set title, reorder


@pytest.fixture
def home() -> Iterator[Path]:
    # Short, under /tmp: the embedded server's socket lives in the data directory.
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def batchdesk(home: Path, *args: str | Path, env: dict[str, str] | None = None) -> Run:
    [run] = run_together(home, args, env=env)
    return run


def assert_no_raw_controls(text: str) -> None:
    assert ESC not in text, text
    assert RLO not in text, text


def assert_one_sentence(run: Run, exit_code: int) -> str:
    assert run.returncode == exit_code, run
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


# --- control characters ------------------------------------------------------------------------


@pytest.mark.slow
def test_list_show_and_the_worker_make_control_characters_visible_and_json_keeps_them(
    home: Path,
) -> None:
    good = make_png(home / "in" / f"PL_DXB191_{HOSTILE}.png")
    bad = make_damaged_png(home / "in" / f"PL_DXB192_{HOSTILE}_cut.png", size=(64, 64))
    user = f"mallory{ESC}[31m{RLO}"
    description = f"Spring {ESC}[8mhidden{ESC}[0m {RLO}lanif"
    submitted = batchdesk(
        home,
        "submit",
        "--json",
        "-d",
        description,
        good,
        bad,
        env={"LOGNAME": user, "USER": user},
    )
    assert submitted.returncode == 0, submitted
    name = submitted.json()["batches"][0]["base_directory_name"]

    worker = batchdesk(home, "worker", "--drain", "--threads", "1")
    listed, shown, shown_json, listed_json = run_together(
        home, ["list"], ["show", name], ["show", name, "--json"], ["list", "--json"]
    )

    assert worker.returncode == 0, worker
    assert "Completed " in worker.stderr
    assert "Failed " in worker.stderr
    for run in (worker, listed, shown):
        assert_no_raw_controls(run.stdout + run.stderr)
    assert "\\x1b[2J\\x1b]0;pwned\\x1b\\ \\u202egnp.exe" in worker.stderr  # the file names
    assert "Spring \\x1b[8mhidden\\x1b[0m \\u202elanif" in listed.stdout
    assert "Spring \\x1b[8mhidden\\x1b[0m \\u202elanif" in shown.stdout
    assert "mallory\\x1b[31m\\u202e@" in shown.stdout
    assert "\\u202egnp.exe" in shown.stdout
    # A table row keeps its columns: the name still comes first and the status after it.
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(name)]
    assert row.split()[1] == "failed"
    # --json is exact.
    exact = shown_json.json()
    assert exact["render_description"] == description
    assert exact["created_by"].startswith(user + "@")
    assert [job["file_name"] for job in exact["jobs"]] == [good.name, bad.name]
    assert listed_json.json()[0]["render_description"] == description


def test_skipped_paths_and_error_sentences_make_control_characters_visible(
    home: Path,
) -> None:
    odd = home / f"notes{ESC}[2J{RLO}.txt"
    odd.write_text("not an image")
    assert batchdesk(home, "stats").returncode == 0  # the embedded database's first start

    submitted, unknown = run_together(home, ["submit", odd], ["show", f"nope{ESC}[2J{RLO}"])

    assert submitted.returncode == 1, submitted
    assert_no_raw_controls(submitted.stderr)
    assert "notes\\x1b[2J\\u202e.txt" in submitted.stderr
    assert_no_raw_controls(assert_one_sentence(unknown, 1))


# --- stray warnings and log lines --------------------------------------------------------------


@pytest.mark.slow
def test_log_lines_go_to_the_log_file_and_stderr_keeps_the_workers_own_lines(
    home: Path, pg_server: TestServer, database_name: str
) -> None:
    conninfo = pg_server.conninfo(database_name)
    env = environment_for(home)
    log_file = home / "logs" / "cli.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "batchdesk", "--database-url", conninfo, "worker", "--threads", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=home,
    )
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()
        assert first.startswith("Worker "), first
        # The database goes away under the worker: it logs that it keeps retrying.
        with psycopg.connect(pg_server.admin_conninfo, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database_name))
            )
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while "WARNING batchdesk.jobs.runner" not in _read(log_file):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker logged nothing about the lost database"
            time.sleep(0.1)
        worker.send_signal(signal.SIGINT)
        _out, rest = worker.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
        with psycopg.connect(pg_server.admin_conninfo, autocommit=True) as connection:
            connection.execute(  # the fixture drops it again; it must exist for that
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name))
            )

    assert worker.returncode == 0, rest
    assert rest.splitlines() == ["Stopping: giving back the jobs that have not finished..."]
    logged = _read(log_file)
    assert "WARNING batchdesk.jobs.runner: " in logged
    assert database_name in logged  # the reason: the database is gone


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def test_python_warnings_and_library_log_lines_reach_the_log_file_not_stderr_without_passwords(
    home: Path,
) -> None:
    # Pillow's real warning (a palette image with per-entry transparency), psycopg's logger and
    # batchdesk's own, in a process set up as `batchdesk` sets itself up.
    code = """
import logging, sys
from PIL import Image
from batchdesk.cli import route_logs
from batchdesk.cli.output import err
from batchdesk.settings import AppPaths
route_logs(AppPaths.from_environment())
image = Image.new("P", (4, 4))
image.info["transparency"] = bytes([0, 128, 255])
image.convert("RGB")
logging.getLogger("psycopg").warning("error ignored terminating %s: %s", "<Copy [BAD]>", "gone")
logging.getLogger("batchdesk.storage").warning("a line for the log")
logging.getLogger("psycopg").warning("lost postgresql://anna:s3cret@db/studio password=s3cret")
err("The one sentence.")
"""
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environment_for(home),
        timeout=COMMAND_TIMEOUT,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert run.stderr == "The one sentence.\n"
    logged = (home / "logs" / "cli.log").read_text(encoding="utf-8")
    assert "UserWarning: Palette images with Transparency expressed in bytes" in logged
    assert "error ignored terminating <Copy [BAD]>: gone" in logged
    assert "a line for the log" in logged
    assert "lost postgresql://anna:***@db/studio password=***" in logged  # as the window's log
    assert "s3cret" not in logged


# --- threads -----------------------------------------------------------------------------------


def test_threads_out_of_range_are_refused_with_a_sentence_and_exit_2(home: Path) -> None:
    runs = run_together(
        home,
        ["worker", "--drain", "--threads", "0"],
        ["worker", "--drain", "--threads", "-1"],
        ["worker", "--drain", "--threads", str(MAX_WORKER_THREADS + 1)],
        ["worker", "--drain", "--threads", "100000"],
        ["worker", "--drain", "--threads", "many"],
    )

    for run in runs:
        sentence = assert_one_sentence(run, 2)
        assert f"from 1 to {MAX_WORKER_THREADS}" in sentence, sentence
        assert "--threads" in sentence, sentence
        assert "100,000 threads" not in sentence


@pytest.mark.parametrize("value", [0, -3, 100_000, MAX_WORKER_THREADS + 1])
def test_worker_threads_out_of_range_in_the_settings_file_is_one_sentence(
    home: Path, value: int
) -> None:
    settings = home / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"worker_threads": value}), encoding="utf-8")

    worker, listed = run_together(home, ["worker", "--drain"], ["list"])

    for run in (worker, listed):
        sentence = assert_one_sentence(run, 1)
        assert "worker_threads" in sentence, sentence
        assert str(settings) in sentence, sentence
        assert f"from 1 to {MAX_WORKER_THREADS}" in sentence, sentence


def test_threads_within_range_are_announced(home: Path) -> None:
    run = batchdesk(home, "worker", "--drain", "--threads", str(MAX_WORKER_THREADS))

    assert run.returncode == 0, run
    [announced] = [line for line in run.stderr.splitlines() if line.startswith("Worker ")]
    assert f"running {MAX_WORKER_THREADS} threads" in announced
    assert os.cpu_count()  # the cap does not depend on it: the same on every machine
