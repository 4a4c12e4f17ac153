"""The embedded server: shared by a user's batchdesk processes, stopped by the last, private.

Real processes only, each test on a fresh BATCHDESK_HOME: `python -m batchdesk` commands, and a
child that keeps the app open the way the window does until it is told to let go (or killed).
Stopping the server is awaited, never slept for: `pg_ctl stop` returns once the postmaster has
gone, but the test only relies on a bounded poll of the process table.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import platformdirs
import psutil
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.processes import COMMAND_TIMEOUT, Run, environment_for, run_together
from tests.factories import make_png

STOP_TIMEOUT = 30

# Opens the app as the window does, prints the connection string, then answers each line on
# stdin with the number of batches, until stdin closes: then it closes the app and exits.
WINDOW_CODE = """
import sys
from batchdesk.app import open_app
with open_app() as app:
    print(app.database.conninfo, flush=True)
    for _request in sys.stdin:
        with app.database.connect() as connection:
            (count,) = connection.execute("SELECT count(*) FROM batches").fetchone()
        print(count, flush=True)
"""


def pgdata_of(home: Path) -> Path:
    return home / "data" / "postgres"


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Return the running postmasters serving `pgdata`."""
    target = os.path.realpath(pgdata)
    return [
        process
        for process in psutil.process_iter(["name", "cmdline", "status"])
        if process.info["name"] == "postgres"
        and process.info["status"] != psutil.STATUS_ZOMBIE
        and target in (process.info["cmdline"] or [])
    ]


def handle_pids(pgdata: Path) -> list[int]:
    """Return the process ids registered as users of the server."""
    text = (pgdata / ".handle_pids.json").read_text()
    return json.loads(text or "[]")  # type: ignore[no-any-return]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = STOP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting until {what}")
        time.sleep(0.05)


def run_batchdesk(home: Path, *args: str | Path) -> Run:
    [result] = run_together(home, args)
    return result


class Window:
    """A batchdesk process holding the app open, as the desktop window does."""

    def __init__(self, home: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WINDOW_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment_for(home),
            cwd=home,
        )
        self.conninfo = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the window process exited with {self.process.wait(COMMAND_TIMEOUT)}"
        return line.strip()

    def count_batches(self) -> int:
        """Ask the window to query the database on the connection it holds."""
        assert self.process.stdin is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.read_line())

    def let_go(self) -> int:
        """Close its stdin so it closes the app and exits; return its exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(COMMAND_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL it: it gets no chance to let go of anything."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(COMMAND_TIMEOUT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(COMMAND_TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()


@contextlib.contextmanager
def open_window(home: Path) -> Iterator[Window]:
    """Start a Window and wait until its app is open."""
    window = Window(home)
    try:
        window.conninfo = window.read_line()
        yield window
    finally:
        window.close()


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh, short BATCHDESK_HOME under /tmp (socket paths are limited to ~100 characters)."""
    path = Path(tempfile.mkdtemp(prefix="bd-"))
    yield path
    # A failed test may leave its server running: stop that one, by its process id.
    leftovers = postgres_processes(pgdata_of(path))
    for process in leftovers:
        process.terminate()
    psutil.wait_procs(leftovers, timeout=STOP_TIMEOUT)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_share_the_server_and_the_last_to_exit_stops_it(
    home: Path, tmp_path: Path
) -> None:
    pgdata = pgdata_of(home)
    png = make_png(tmp_path / "PL_DXB191_view0.png")

    with open_window(home) as window:
        command = run_batchdesk(home, "submit", png)
        assert command.returncode == 0, command.stderr

        # The command has exited; the window's server and connection carry on.
        assert window.count_batches() == 1
        assert handle_pids(pgdata) == [window.pid]
        assert postgres_processes(pgdata)

        assert window.let_go() == 0

    wait_until(lambda: not postgres_processes(pgdata), "the last process stopped the server")
    assert handle_pids(pgdata) == []


@pytest.mark.slow
def test_commands_started_together_on_a_fresh_home_all_work(home: Path) -> None:
    pgdata = pgdata_of(home)

    results = run_together(home, *(["stats", "--json"] for _ in range(4)))

    for result in results:
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["total_batches"] == 0
    wait_until(lambda: not postgres_processes(pgdata), "the last process stopped the server")
    assert handle_pids(pgdata) == []


@pytest.mark.slow
def test_a_killed_process_is_pruned_by_the_next_command_which_then_stops_the_server(
    home: Path,
) -> None:
    pgdata = pgdata_of(home)
    with open_window(home) as window:
        window.kill()
    assert handle_pids(pgdata) == [window.pid]
    assert postgres_processes(pgdata), "the server outlives a killed process"

    command = run_batchdesk(home, "stats", "--json")

    assert command.returncode == 0, command.stderr
    assert window.pid not in handle_pids(pgdata)
    assert handle_pids(pgdata) == []
    wait_until(lambda: not postgres_processes(pgdata), "the last process stopped the server")


@pytest.mark.slow
def test_the_server_listens_on_a_socket_and_on_no_network_port(home: Path) -> None:
    pgdata = pgdata_of(home)
    with open_window(home) as window:
        socket_dir = str(conninfo_to_dict(window.conninfo)["host"])
        with psycopg.connect(window.conninfo) as conn:
            listen_addresses = conn.execute("SHOW listen_addresses").fetchone()
        [postmaster] = postgres_processes(pgdata)
        server_pids = {postmaster.pid, *(child.pid for child in postmaster.children())}
        listening = [
            connection
            for connection in psutil.net_connections(kind="inet")
            if connection.pid in server_pids and connection.status == psutil.CONN_LISTEN
        ]
        assert window.let_go() == 0

    assert socket_dir == str(pgdata)  # a socket in its own data directory (short paths)
    assert listen_addresses == ("",)
    assert listening == []


def _snapshot(path: Path) -> list[tuple[str, int]] | None:
    """Return every entry under `path` with its modification time, or None if it is absent."""
    if not path.exists():
        return None
    entries = [(".", path.stat().st_mtime_ns)]
    for folder, subfolders, files in os.walk(path):
        for name in [*subfolders, *files]:
            entry = Path(folder) / name
            entries.append((str(entry.relative_to(path)), entry.lstat().st_mtime_ns))
    return sorted(entries)


@pytest.mark.slow
def test_batchdesk_home_moves_every_local_path(home: Path, tmp_path: Path) -> None:
    defaults = {
        Path.home() / ".local" / "share" / "batchdesk",
        Path.home() / ".config" / "batchdesk",
        platformdirs.user_data_path("batchdesk"),
        platformdirs.user_config_path("batchdesk"),
        platformdirs.user_log_path("batchdesk"),
        platformdirs.user_cache_path("batchdesk"),
        Path("/var/lib/batchdesk"),  # where root's embedded data would go
    }
    before = {path: _snapshot(path) for path in defaults}
    png = make_png(tmp_path / "PL_DXB191_view0.png")

    command = run_batchdesk(home, "submit", png)

    assert command.returncode == 0, command.stderr
    assert (pgdata_of(home) / "PG_VERSION").is_file()
    assert {path: _snapshot(path) for path in defaults} == before
