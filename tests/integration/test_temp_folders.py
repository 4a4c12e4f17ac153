"""A worker starting on this host removes the temporary folders of workers that were killed."""

import subprocess
import sys
from pathlib import Path

from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage.database import Database
from tests.e2e.processes import COMMAND_TIMEOUT

# A worker process that makes its runner (and so its temporary folder), says where, and waits.
WORKER = """
import sys
from pathlib import Path
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage.database import Database
runner = Runner(Database(sys.argv[1], "test"), RunnerConfig(work_dir=Path(sys.argv[2])))
(runner._work_dir / "job-1-x").mkdir()
(runner._work_dir / "job-1-x" / "input.png").write_bytes(b"a job's input" * 1000)
print(runner._work_dir, flush=True)
sys.stdin.read()
"""


def start_worker(conninfo: str, work: Path) -> tuple["subprocess.Popen[str]", Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, conninfo, str(work)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    folder = Path(process.stdout.readline().strip())
    assert folder.is_dir(), "the worker did not start"
    return process, folder


def start_and_stop_a_worker(database: Database, work: Path) -> None:
    runner = Runner(database, RunnerConfig(work_dir=work))
    runner.start()
    runner.stop()


def test_a_starting_worker_removes_the_folder_of_a_killed_one_and_keeps_a_running_ones(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    killed, killed_folder = start_worker(database_conninfo, work)
    running, running_folder = start_worker(database_conninfo, work)
    try:
        killed.kill()  # SIGKILL: no chance to tidy up
        killed.wait(COMMAND_TIMEOUT)

        start_and_stop_a_worker(database, work)

        assert sorted(work.iterdir()) == [running_folder]
        assert not killed_folder.exists()
    finally:
        for process in (killed, running):
            process.communicate("", timeout=COMMAND_TIMEOUT)  # closes its pipes too


def test_a_folder_whose_process_id_was_reused_is_removed_and_others_are_left(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    process, folder = start_worker(database_conninfo, work)
    try:
        host, pid, started, random = folder.name.removeprefix("batchdesk-worker-").split("-")
        assert pid == str(process.pid)
        # The same process id, started at another time: a later process reusing the id.
        reused = work / f"batchdesk-worker-{host}-{pid}-{int(started) + 1}-{random}"
        reused.mkdir()
        other_host = work / f"batchdesk-worker-elsewhere-{pid}-1-{random}"  # not ours to judge
        other_host.mkdir()
        older_kind = work / "batchdesk-worker-k2j4h5g6"  # no process recorded: left alone
        older_kind.mkdir()
        not_a_folder = work / f"batchdesk-worker-{host}-999999999-1-{random}"
        not_a_folder.write_text("a file, not a worker's folder")
        link = work / f"batchdesk-worker-{host}-999999998-1-{random}"
        link.symlink_to(folder, target_is_directory=True)

        start_and_stop_a_worker(database, work)

        assert sorted(work.iterdir()) == sorted(
            [folder, other_host, older_kind, not_a_folder, link]
        )
        assert (folder / "job-1-x" / "input.png").is_file()  # nothing removed through the link
    finally:
        process.communicate("", timeout=COMMAND_TIMEOUT)
