"""`batchdesk export` and `deliver` end to end, as real processes."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.processes import COMMAND_TIMEOUT, environment_for, run_together
from tests.factories import make_png


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))  # short: the server's socket lives here
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def batchdesk(home: Path, *args: str | Path) -> tuple[int, str, str]:
    [run] = run_together(home, args)
    return run.returncode, run.stdout, run.stderr


def completed_batch(home: Path, count: int = 2) -> str:
    paths = [
        make_png(home / "in" / f"PL_DXB{191 + i}_v.png", (32, 32), seed=i) for i in range(count)
    ]
    code, out, err = batchdesk(home, "submit", "--json", *paths)
    assert code == 0, err
    code, _out, err = batchdesk(home, "worker", "--drain", "--deliver-to", home / "delivered")
    assert code == 0, err
    name: str = json.loads(out)["batches"][0]["base_directory_name"]
    assert f"Delivered {name} to {home / 'delivered' / name}" in err
    return name


@pytest.mark.slow
def test_export_writes_the_zip_here_and_will_not_overwrite_without_force(home: Path) -> None:
    name = completed_batch(home)

    code, out, err = batchdesk(home, "export", name)
    assert (code, err) == (0, "")
    assert out == f"Exported {name} to {home / (name + '.zip')}: 2 files, " + out.split(", ")[1]
    with zipfile.ZipFile(home / f"{name}.zip") as archive:
        assert archive.namelist() == [
            f"{name}/PL_DXB191_v.png",
            f"{name}/PL_DXB192_v.png",
            f"{name}/manifest.csv",
        ]
        assert archive.read(f"{name}/PL_DXB191_v.png") == (home / "in/PL_DXB191_v.png").read_bytes()

    code, out, err = batchdesk(home, "export", name)
    assert (code, out) == (1, "")
    assert err == f"{home / (name + '.zip')} already exists; pass --force to replace.\n"

    code, out, err = batchdesk(home, "export", name, "--force", "--json", "-o", home / "in")
    assert code == 0, err
    assert json.loads(out)["path"] == str(home / "in" / f"{name}.zip")
    assert sorted(p.name for p in (home / "delivered" / name).iterdir()) == [
        "PL_DXB191_v.png",
        "PL_DXB192_v.png",
        "manifest.csv",
    ]


@pytest.mark.slow
def test_one_jobs_outputs_and_clear_errors(home: Path) -> None:
    name = completed_batch(home)

    code, out, err = batchdesk(home, "export", name, "--job", "PL_DXB192_v.png", "-o", home / "j")
    assert code == 0, err
    assert out.startswith(f"Exported {name} to {home / 'j'}: 1 file, ")
    assert (home / "j/PL_DXB192_v.png").read_bytes() == (home / "in/PL_DXB192_v.png").read_bytes()

    code, _out, err = batchdesk(home, "export", name, "--job", "nope.png")
    assert (code, err) == (1, f"Batch {name} has no job 'nope.png' (give its file name or id).\n")
    code, _out, err = batchdesk(home, "export", "PL_DXB_2020-01-01_batch-9")
    assert (code, err) == (1, "There is no batch 'PL_DXB_2020-01-01_batch-9'.\n")
    code, _out, err = batchdesk(home, "deliver", name)
    assert code == 2
    assert "--to FOLDER" in err


# Runs the command with SIGXFSZ ignored and files limited to 200 x 512 bytes: writes past the
# limit fail with EFBIG, as on a file system that cannot hold a file that large.
LIMITED_FILE_SIZE = 'trap "" XFSZ; ulimit -f 200; exec "$@"'


def wait_until_completed(home: Path, name: str) -> None:
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while time.monotonic() < deadline:
        code, out, _err = batchdesk(home, "show", name, "--json")
        if code == 0 and json.loads(out)["status"] == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} did not complete")


@pytest.mark.slow
def test_an_export_the_file_system_refuses_leaves_nothing(home: Path) -> None:
    inputs = home / "in"
    inputs.mkdir()
    for i in range(2):  # noise does not compress: the zip outgrows the limit
        Image.effect_noise((300, 300), 80 + i).convert("RGB").save(inputs / f"PL_DXB19{i}_v.png")
    code, out, err = batchdesk(home, "submit", "--json", inputs)
    assert code == 0, err
    name = json.loads(out)["batches"][0]["base_directory_name"]
    # A worker keeps the embedded server up, so the limited process below only attaches to it.
    worker = subprocess.Popen(
        [sys.executable, "-m", "batchdesk", "worker"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment_for(home),
        cwd=home,
    )
    try:
        wait_until_completed(home, name)
        (home / "out").mkdir()
        limited = subprocess.run(
            ["sh", "-c", LIMITED_FILE_SIZE, "sh", sys.executable, "-m", "batchdesk", "export",
             name, "-o", str(home / "out")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            env=environment_for(home),
            cwd=home,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )  # fmt: skip
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=COMMAND_TIMEOUT)
    assert limited.returncode == 1
    assert limited.stderr == (
        f"The file system holding {home / 'out'} does not allow a file this large; "
        f"nothing was written to {name}.zip.\n"
    )
    assert list((home / "out").iterdir()) == []
