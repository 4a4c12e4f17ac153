"""`batchdesk --self-test`: the installed program proves itself, and says where it broke."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import environment_for
from tests.filesystems import mount_tmpfs

pytestmark = pytest.mark.slow


def self_test(tmp_path: Path, temp_folder: Path) -> subprocess.CompletedProcess[str]:
    env = environment_for(tmp_path / "user-home") | {
        "TMPDIR": str(temp_folder),
        "QT_QPA_PLATFORM": "offscreen",
    }
    return subprocess.run(
        [sys.executable, "-m", "batchdesk", "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def postgres_serving(folder: Path) -> list[str]:
    """Command lines of PostgreSQL servers whose data directory is under `folder`."""
    found = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [
        line for line in found.stdout.splitlines() if "postgres" in line and str(folder) in line
    ]


@pytest.fixture
def small_temp(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB temporary folder: too small for a PostgreSQL data directory."""
    yield from mount_tmpfs(tmp_path / "small-temp", "size=1m,mode=1777")


def test_the_self_test_passes_and_leaves_nothing_behind(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()

    done = self_test(tmp_path, temp)

    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("self-test passed: PL_DXB_")
    assert "_batch-1, 1 job, zip " in line
    # The temporary home is gone (a socket folder, batchdesk-UID, may stay for the next run).
    assert [p.name for p in temp.iterdir() if p.name.startswith("batchdesk-self-test")] == []
    assert postgres_serving(temp) == []  # and its embedded server stopped
    assert not (tmp_path / "user-home").exists()  # the user's own home was never touched


def test_a_failing_step_is_named_with_a_non_zero_exit(tmp_path: Path, small_temp: Path) -> None:
    done = self_test(tmp_path, small_temp)

    assert done.returncode == 1
    assert done.stdout == ""
    failed, kept = done.stderr.strip().splitlines()[-2:]
    assert failed.startswith("self-test failed at start database: The embedded database ")
    assert failed.endswith(".")
    assert kept.startswith(
        f"Its files (logs included) are kept in {small_temp}/batchdesk-self-test"
    )
    assert postgres_serving(small_temp) == []
