"""`batchdesk db gc` with a folder store: a submission killed mid-upload, a store not mounted."""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from batchdesk.domain.units import format_size, plural
from batchdesk.storage.file_bytes import STORE_GROUP_BYTES
from batchdesk.storage.store_identity import MARKER_NAME
from tests.e2e.processes import COMMAND_TIMEOUT, Run, environment_for, run_together
from tests.e2e.test_db_gc_cli import wait_for_lock_waiter
from tests.factories import make_png

TEMPORARY = ".incoming-"


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def noise_png(path: Path, seed: int, side: int = 2600) -> Path:
    """A PNG of random pixels (about 20 MB): it takes a while to write, so a kill lands in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = random.Random(seed).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), pixels).save(path, format="PNG", compress_level=0)
    return path


def in_store(store: Path) -> list[Path]:
    """The files the store keeps (not its marker)."""
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name != MARKER_NAME)


def rows(conninfo: str, query: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return rows_in(conn, query)


def rows_in(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def make_old(conninfo: str, store: Path) -> None:
    """Move the stored rows and the store's files an hour and a bit into the past."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("UPDATE blobs SET created_at = created_at - interval '61 minutes'")
    then = time.time() - 61 * 60
    for path in in_store(store):
        os.utime(path, (then, then))


def batchdesk(home: Path, conninfo: str, *args: str | Path) -> Run:
    [run] = run_together(home, ("--database-url", conninfo, *args))
    return run


def copying(store: Path) -> bool:
    """Whether an upload is writing a file into the store (not only checking it can)."""
    return any(
        p.name.startswith(TEMPORARY) and not p.name.startswith(f"{TEMPORARY}probe")
        for p in in_store(store)
    )


def kill_while_copying_into_the_store(
    home: Path, conninfo: str, store: Path, sources: list[Path]
) -> None:
    """Start `batchdesk submit`; SIGKILL it as it copies files in, after a first group committed.

    So it leaves every kind of leftover: rows no job uses with their files, and the temporary
    files of the group it was writing.
    """
    submission = subprocess.Popen(
        [sys.executable, "-m", "batchdesk", "--database-url", conninfo, "submit", *sources],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        env=environment_for(home),
        cwd=home,
    )
    deadline = time.monotonic() + COMMAND_TIMEOUT
    try:
        with psycopg.connect(conninfo, autocommit=True) as monitor:
            while submission.poll() is None and time.monotonic() < deadline:
                if copying(store) and rows_in(monitor, "SELECT count(*) FROM blobs"):
                    submission.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.002)
    finally:
        if submission.poll() is None and time.monotonic() >= deadline:
            submission.kill()
        submission.communicate(timeout=COMMAND_TIMEOUT)
    assert submission.returncode == -signal.SIGKILL, "the submission ended before it was killed"


@pytest.mark.slow
def test_a_submission_killed_mid_upload_leaves_nothing_missing_and_db_gc_reclaims_the_rest(
    home: Path, database_conninfo: str
) -> None:
    store = home / "share" / "batchdesk"
    store.mkdir(parents=True)
    assert batchdesk(home, database_conninfo, "db", "file-store", store).returncode == 0
    # Enough files for two of the upload's groups: the first commits, the second is cut short.
    count = 2 + int(1.2 * STORE_GROUP_BYTES / (2600 * 2600 * 3))
    sources = [noise_png(home / "in" / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(count)]

    kill_while_copying_into_the_store(home, database_conninfo, store, sources)

    assert rows(database_conninfo, "SELECT count(*) FROM batches") == 0
    assert 0 < rows(database_conninfo, "SELECT count(*) FROM blobs") < count
    assert copying(store)  # what the killed upload left half written
    check = batchdesk(home, database_conninfo, "db", "check", "--files")
    assert check.returncode == 0, check
    assert "Every file in the file store is there and matches its hash." in check.stdout

    # Two of the files submitted again: they must outlive every gc, whatever the killed
    # upload had already put in the store.
    reused = sources[:2]
    again = batchdesk(home, database_conninfo, "submit", "--json", *reused)
    assert again.returncode == 0, again
    kept = {store / _name_of(p) for p in reused}
    dry_now = batchdesk(home, database_conninfo, "db", "gc", "--json")
    assert dry_now.returncode == 0, dry_now
    assert dry_now.json()["file_store"]["files"] == 0  # within the hour: nothing goes yet
    assert dry_now.json()["file_store"]["recent_files"] > 0

    make_old(database_conninfo, store)
    sizes = {p: p.stat().st_size for p in in_store(store)}
    garbage = set(sizes) - kept
    assert garbage
    dry = batchdesk(home, database_conninfo, "db", "gc")
    assert dry.returncode == 0, dry
    assert set(in_store(store)) == set(sizes)
    done = batchdesk(home, database_conninfo, "db", "gc", "--yes", "--json")

    assert done.returncode == 0, done
    assert set(in_store(store)) == kept
    assert rows(database_conninfo, "SELECT count(*) FROM blobs") == len(reused)
    reclaimed = done.json()["file_store"]
    assert reclaimed["files"] == len(garbage)
    assert reclaimed["bytes"] == sum(sizes[p] for p in garbage)
    assert reclaimed["temporary_files"] == sum(p.name.startswith(TEMPORARY) for p in garbage)
    counted = f"{plural(reclaimed['files'], 'file')} ({format_size(reclaimed['bytes'])})"
    assert f"Would delete {counted} from the file store {store}" in dry.stdout
    check = batchdesk(home, database_conninfo, "db", "check", "--files")
    assert check.returncode == 0, check
    assert "Every file in the file store is there and matches its hash." in check.stdout


def _name_of(source: Path) -> Path:
    name = hashlib.sha256(source.read_bytes()).hexdigest()
    return Path(name[:2], name[2:4], name)


def test_db_gc_with_the_store_not_mounted_says_so_and_deletes_nothing_from_it(
    home: Path, database_conninfo: str
) -> None:
    store = home / "share" / "batchdesk"
    store.mkdir(parents=True)
    assert batchdesk(home, database_conninfo, "db", "file-store", store).returncode == 0
    sources = [make_png(home / "in" / f"PL_DXB19{i}_v.png", seed=i) for i in range(2)]
    submitted = batchdesk(home, database_conninfo, "submit", "--json", *sources)
    assert submitted.returncode == 0, submitted
    name = submitted.json()["batches"][0]["base_directory_name"]
    deleted = batchdesk(home, database_conninfo, "delete", "--yes", name)
    assert deleted.returncode == 0, deleted
    make_old(database_conninfo, store)  # its files, used by nothing now, an hour later
    unmounted = home / "share" / "elsewhere"
    store.rename(unmounted)

    gone = batchdesk(home, database_conninfo, "db", "gc", "--yes")
    as_json = batchdesk(home, database_conninfo, "db", "gc", "--json")

    unmounted.rename(store)
    assert gone.returncode == 1
    assert gone.stderr == (
        f"The file store {store} is not there: is the share mounted on this machine, and does "
        "its file_store_mapping point to it? Nothing was deleted from the store.\n"
    )
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["file_store"]["problem"] == gone.stderr.strip()
    assert len(in_store(store)) == 2
    [done] = run_together(
        home, ("--database-url", database_conninfo, "db", "gc", "--yes", "--json")
    )
    assert done.returncode == 0, done
    assert done.json()["file_store"]["files"] == 2
    assert in_store(store) == []


@pytest.mark.slow
def test_db_gc_in_one_process_leaves_alone_a_file_a_submission_in_another_is_committing(
    home: Path, database_conninfo: str
) -> None:
    store = home / "share" / "batchdesk"
    store.mkdir(parents=True)
    assert batchdesk(home, database_conninfo, "db", "file-store", store).returncode == 0
    source = make_png(home / "in" / "PL_DXB191_v.png", seed=3)
    first = batchdesk(home, database_conninfo, "submit", "--json", source)
    assert first.returncode == 0, first
    name = first.json()["batches"][0]["base_directory_name"]
    assert batchdesk(home, database_conninfo, "delete", "--yes", name).returncode == 0
    make_old(database_conninfo, store)  # its file: old, named by no row
    digest = hashlib.sha256(source.read_bytes()).digest()

    with psycopg.connect(database_conninfo) as other:
        # Another workstation inserting the same row, not committed: the submission finds the
        # file in the store, holds its folder and waits to insert its own row.
        other.execute(
            "INSERT INTO blobs (sha256, size, location) VALUES (%s, %s, 'store')",
            (digest, source.stat().st_size),
        )
        submission = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchdesk",
                "--database-url",
                database_conninfo,
                "submit",
                source,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            env=environment_for(home),
            cwd=home,
        )
        try:
            wait_for_lock_waiter(database_conninfo)
            during = batchdesk(home, database_conninfo, "db", "gc", "--yes", "--json")
            other.rollback()
            _out, err = submission.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            if submission.poll() is None:
                submission.kill()
                submission.communicate()

    assert submission.returncode == 0, err
    check = batchdesk(home, database_conninfo, "db", "check", "--files")
    assert check.returncode == 0, check
    assert (store / _name_of(source)).read_bytes() == source.read_bytes()
    assert during.returncode == 0, during
    assert during.json()["file_store"]["busy_files"] == 1
    assert during.json()["file_store"]["files"] == 0
