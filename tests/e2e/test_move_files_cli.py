"""`batchdesk db move-files`: a studio's files move to its share and back, killed or not."""

import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from batchdesk.storage.store_identity import MARKER_NAME
from tests.e2e.processes import COMMAND_TIMEOUT, Run, environment_for, run_together
from tests.factories import make_png
from tests.filesystems import mount_tmpfs


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class Studio:
    """One workstation's `batchdesk`, on the test's database."""

    def __init__(self, home: Path, conninfo: str) -> None:
        self.home = home
        self.conninfo = conninfo

    def argv(self, *args: str | Path) -> tuple[str | Path, ...]:
        return ("--database-url", self.conninfo, *args)

    def run(self, *args: str | Path) -> Run:
        [run] = run_together(self.home, self.argv(*args))
        return run

    def ok(self, *args: str | Path) -> Run:
        run = self.run(*args)
        assert run.returncode == 0, run
        return run

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "batchdesk", *map(str, self.argv(*args))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            env=environment_for(self.home),
            cwd=self.home,
        )

    def submit(self, paths: list[Path]) -> str:
        run = self.ok("submit", "--json", *paths)
        return str(run.json()["batches"][0]["base_directory_name"])

    def exported(self, name: str, target: Path) -> dict[str, bytes]:
        """The batch's inputs and outputs as an export writes them, by name in the zip."""
        self.ok("export", name, "--include-inputs", "--output", target)
        with zipfile.ZipFile(target) as archive:
            return {n: archive.read(n) for n in archive.namelist() if n.endswith(".png")}

    def locations(self) -> dict[str, int]:
        with psycopg.connect(self.conninfo) as conn:
            rows = conn.execute("SELECT location, count(*) FROM blobs GROUP BY 1").fetchall()
        return {str(row[0]): int(row[1]) for row in rows}


def in_store(store: Path) -> list[Path]:
    """The files the store keeps (not its marker), temporary ones included."""
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name != MARKER_NAME)


def renders(folder: Path, count: int, size: tuple[int, int] = (48, 48)) -> list[Path]:
    return [make_png(folder / f"PL_DXB{1000 + i}_v.png", size, seed=i) for i in range(count)]


def noise_png(path: Path, seed: int, side: int) -> Path:
    """A PNG of random pixels, side * side * 3 bytes and a little more: it does not compress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = random.Random(seed).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), pixels).save(path, format="PNG", compress_level=0)
    return path


def test_files_move_to_the_store_and_back_while_a_worker_runs(
    home: Path, database_conninfo: str
) -> None:
    studio = Studio(home, database_conninfo)
    inputs = renders(home / "in", 40)
    name = studio.submit(inputs)
    store = home / "share" / "batchdesk"
    store.mkdir(parents=True)
    studio.ok("db", "file-store", store)

    worker, move = run_together(
        home, studio.argv("worker", "--drain"), studio.argv("db", "move-files", "--to", "store")
    )

    assert worker.returncode == 0, worker
    assert move.returncode == 0, move
    assert move.stdout.startswith("Moved 40 stored files (")
    assert f") to {store} in " in move.stdout
    assert move.stdout.endswith(" s; 0 were there already.\n")
    assert studio.locations() == {"store": 40}
    assert len(in_store(store)) == 40
    assert "Every file in the file store is there and matches its hash." in (
        studio.ok("db", "check", "--files").stdout
    )
    in_the_store = studio.exported(name, home / "store.zip")
    by_name = {p.name: p.read_bytes() for p in inputs}
    assert {n.rsplit("/", 1)[1]: b for n, b in in_the_store.items() if "/originals/" in n} == (
        by_name
    )
    assert len(in_the_store) == 80  # every job completed, its output beside its input

    studio.ok("db", "file-store", "database")
    back = studio.ok("db", "move-files", "--to", "database", "--json").json()

    assert back == {
        "to": "database",
        "moved_files": 40,
        "moved_bytes": sum(len(b) for b in by_name.values()),
        "already_there": 0,
        "not_moved": [],
        "old_copies_left": 0,
        "seconds": back["seconds"],
    }
    assert studio.locations() == {"database": 40}
    assert in_store(store) == []
    assert studio.exported(name, home / "database.zip") == in_the_store
    again = studio.ok("db", "move-files", "--to", "database")
    assert again.stdout.startswith("Moved 0 stored files (0 B) into the database in ")
    assert again.stdout.endswith(" s; 40 were there already.\n")


def moved_so_far(conninfo: str, to: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM blobs WHERE location = %s", (to,)).fetchone()
    assert row is not None
    return int(row[0])


def stop_midway(
    studio: Studio, to: str, sent: signal.Signals, after: int = 20
) -> tuple[int, str, int]:
    """Start a move, signal it once `after` files are there; return its code, stderr, count."""
    mover = studio.start("db", "move-files", "--to", to)
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while moved_so_far(studio.conninfo, to) < after:
            assert mover.poll() is None, mover.communicate()
            assert time.monotonic() < deadline, "the move never got going"
            time.sleep(0.02)
        mover.send_signal(sent)
        _out, err = mover.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        if mover.poll() is None:
            mover.kill()
            mover.communicate()
    return mover.returncode, err, moved_so_far(studio.conninfo, to)


@pytest.mark.slow
def test_a_move_killed_or_stopped_midway_goes_on_where_it_stopped(
    home: Path, database_conninfo: str
) -> None:
    studio = Studio(home, database_conninfo)
    inputs = renders(home / "in", 400)
    name = studio.submit(inputs)
    before = studio.exported(name, home / "before.zip")
    store = home / "share"
    store.mkdir()
    studio.ok("db", "file-store", store)

    code, err, moved = stop_midway(studio, "store", signal.SIGTERM)  # a service stopped
    assert code == 143
    assert err.startswith("Stopped after moving ")
    assert 20 <= moved < 400
    code, _err, moved = stop_midway(studio, "store", signal.SIGKILL, after=moved + 20)

    assert code == -signal.SIGKILL
    assert 40 <= moved < 400, "the kill did not land in the middle of the move"
    assert studio.exported(name, home / "killed.zip") == before  # every file whole somewhere
    assert "Every file in the file store is there" in studio.ok("db", "check", "--files").stdout
    rest = studio.ok("db", "move-files", "--to", "store", "--json").json()
    assert (rest["moved_files"], rest["already_there"]) == (400 - moved, moved)
    assert studio.locations() == {"store": 400}
    check = studio.ok("db", "check", "--files")
    assert "Every file in the file store is there and matches its hash." in check.stdout
    assert studio.exported(name, home / "resumed.zip") == before

    studio.ok("db", "file-store", "database")
    code, err, moved = stop_midway(studio, "database", signal.SIGINT)  # Ctrl+C

    assert code == 130
    assert 20 <= moved < 400
    assert err.startswith("Stopped after moving ")
    assert err.endswith(
        "every file is whole in one place or the other. Run `batchdesk db move-files --to "
        "database` again to move the rest.\n"
    )
    assert studio.exported(name, home / "stopped.zip") == before
    rest = studio.ok("db", "move-files", "--to", "database", "--json").json()
    assert (rest["moved_files"], rest["already_there"]) == (400 - moved, moved)
    assert studio.locations() == {"database": 400}
    assert "Every file in the file store is there" in studio.ok("db", "check", "--files").stdout
    assert studio.exported(name, home / "back.zip") == before


@pytest.fixture
def small_share(home: Path) -> Iterator[Path]:
    yield from mount_tmpfs(home / "small", "size=256k,mode=0777")


def test_a_share_too_small_for_the_files_is_refused_before_anything_moves(
    home: Path, database_conninfo: str, small_share: Path
) -> None:
    studio = Studio(home, database_conninfo)
    inputs = [noise_png(home / "in" / f"PL_DXB19{i}_v.png", i, 200) for i in range(3)]
    name = studio.submit(inputs)
    before = studio.exported(name, home / "before.zip")
    studio.ok("db", "file-store", small_share)

    refused = studio.run("db", "move-files", "--to", "store")

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith(f"The file store {small_share} has ")
    assert refused.stderr.endswith(
        ": make room on the share and run this again (nothing was moved).\n"
    )
    assert studio.locations() == {"database": 3}
    assert in_store(small_share) == []
    assert studio.exported(name, home / "after.zip") == before


@pytest.fixture
def share(home: Path) -> Iterator[Path]:
    yield from mount_tmpfs(home / "share", "size=4m,mode=0777")


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def test_a_read_only_share_takes_no_files_and_gives_its_files_back_to_the_database(
    home: Path, database_conninfo: str, share: Path
) -> None:
    studio = Studio(home, database_conninfo)
    studio.ok("db", "file-store", share)
    kept = studio.submit(renders(home / "kept", 2))  # bytes on the share
    studio.ok("db", "file-store", "database")
    later = studio.submit(renders(home / "later", 2, size=(40, 40)))  # bytes in the database
    before = {n: studio.exported(n, home / f"{n}.zip") for n in (kept, later)}
    studio.ok("db", "file-store", share)
    remount(share, "ro")

    refused = studio.run("db", "move-files", "--to", "store")

    assert refused.returncode == 1
    assert (
        refused.stderr
        == f"Cannot write to the file store {share}: the share is mounted read-only.\n"
    )
    assert studio.locations() == {"store": 2, "database": 2}

    studio.ok("db", "file-store", "database")
    back = studio.run("db", "move-files", "--to", "database")

    assert back.returncode == 0, back
    assert back.stdout.startswith("Moved 2 stored files (")
    assert back.stderr == (
        "2 old copies could not be deleted from the file store; they are unused, and the "
        "files are whole in the database.\n"
    )
    assert studio.locations() == {"database": 4}
    for n, files in before.items():
        assert studio.exported(n, home / f"{n}-after.zip") == files
