"""`batchdesk --self-test`: the installed program proves itself, and says where it broke.

Each test runs the real program as a subprocess with a home folder of its own (HOME and
BATCHDESK_HOME) that the self-test must never write to, and its own TMPDIR for the temporary home.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import command_lines, environment_for
from tests.filesystems import mount_tmpfs

XDG_HOMES = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


def self_test(user_home: Path, temp_folder: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `batchdesk --self-test` as the user whose home is `user_home`, with TMPDIR set."""
    env = {
        key: value
        for key, value in environment_for(user_home).items()
        if key not in XDG_HOMES  # so every per-user folder defaults to one inside HOME
    }
    env |= {"HOME": str(user_home), "TMPDIR": str(temp_folder), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "batchdesk", "--self-test"],
        env=env | extra,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def postgres_serving(folder: Path) -> list[str]:
    """Command lines of PostgreSQL servers whose data directory is under `folder`.

    The machine may run other servers (a system PostgreSQL, other tests' embedded ones).
    """
    return [line for line in command_lines() if "postgres" in line and str(folder) in line]


def self_test_homes(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith("batchdesk-self-test")]


@pytest.fixture
def temp() -> Iterator[Path]:
    # Not under pytest's own temporary root: another pytest session run as root at the same
    # time sets that back to 0700, and the embedded server's `pgserver` account (root runs it
    # as that user) could then no longer reach its data directory.
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-self-test-temp-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def small_temp(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB temporary folder: too small for a PostgreSQL data directory."""
    yield from mount_tmpfs(tmp_path / "small-temp", "size=1m,mode=1777")


def test_help_lists_the_self_test() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchdesk", "--help"], capture_output=True, text=True, check=True
    )

    assert "--self-test" in done.stdout


@pytest.mark.slow
def test_the_self_test_passes_and_leaves_nothing_behind(tmp_path: Path, temp: Path) -> None:
    user_home = tmp_path / "user-home"

    done = self_test(user_home, temp)

    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("self-test passed: PL_DXB_")
    assert "_batch-1, 1 job, zip " in line
    assert line.endswith(" s")
    # The temporary home is gone (a socket folder, batchdesk-UID, may stay for the next run).
    assert self_test_homes(temp) == []
    assert postgres_serving(temp) == []  # and its embedded server stopped
    # Neither the user's settings, database and window state nor anything else in HOME.
    assert not user_home.exists()


@pytest.mark.slow
def test_a_full_disk_fails_at_start_database_and_keeps_the_logs(
    tmp_path: Path, small_temp: Path
) -> None:
    done = self_test(tmp_path / "user-home", small_temp)

    assert done.returncode == 1
    assert done.stdout == ""
    failed, kept = done.stderr.strip().splitlines()[-2:]
    assert failed.startswith("self-test failed at start database: The embedded database ")
    assert failed.endswith(".")
    assert kept.startswith(
        f"Its files (logs included) are kept in {small_temp}/batchdesk-self-test"
    )
    assert postgres_serving(small_temp) == []


def test_a_window_that_cannot_open_is_named_instead_of_an_abort(tmp_path: Path, temp: Path) -> None:
    # What a workstation missing Qt's system libraries looks like: no platform plugin loads.
    done = self_test(tmp_path / "user-home", temp, QT_QPA_PLATFORM="no-such-platform")

    assert done.returncode == 1
    assert done.stdout == ""
    failed = done.stderr.strip().splitlines()[-1]
    assert failed.startswith("self-test failed at open window: ")
    assert "no Qt platform plugin could be initialized" in failed
    assert '"no-such-platform"' in failed
    assert self_test_homes(temp) == []  # nothing worth keeping was written yet


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's embedded server opens folders")
def test_as_root_a_temporary_folder_inside_home_is_refused(tmp_path: Path) -> None:
    user_home = tmp_path / "root-home"
    temp = user_home / "tmp"
    temp.mkdir(parents=True)
    user_home.chmod(0o700)

    done = self_test(user_home, temp)

    assert done.returncode == 1
    failed = done.stderr.strip().splitlines()[-1]
    assert failed.startswith(
        f"self-test failed at temporary home: run as root, the embedded server would open "
        f"{user_home} to every user"
    )
    assert list(temp.iterdir()) == []
    assert user_home.stat().st_mode & 0o777 == 0o700  # still private
