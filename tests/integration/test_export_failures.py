"""A failed export (full disk, read-only or missing folder, Ctrl+C) leaves nothing behind."""

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from batchdesk.errors import FileProblem
from batchdesk.export.folder_export import deliver_batch, export_job
from batchdesk.export.zip_export import export_zip
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.filesystems import mount_tmpfs
from tests.integration.jobs_support import run_all_jobs, submit_paths


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB file system: a batch of a few hundred KB does not fit."""
    yield from mount_tmpfs(tmp_path / "small", "size=256k,mode=0777")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:  # permissions stop ordinary users; root needs a read-only mount
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    yield from mount_tmpfs(tmp_path / "read-only", "ro,size=64k")


def noisy_batch(database: Database, folder: Path, count: int = 4) -> str:
    """A completed batch of incompressible PNGs of ~120 KB each."""
    for i in range(count):
        folder.mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGB", (200, 200), os.urandom(120_000)).save(
            folder / f"PL_DXB19{i}_noise.png"
        )
    name = submit_paths(database, sorted(folder.iterdir()))
    run_all_jobs(database)
    return name


def test_a_full_disk_leaves_no_zip_and_says_so(
    database: Database, tmp_path: Path, small_disk: Path
) -> None:
    name = noisy_batch(database, tmp_path / "in")
    target = small_disk / f"{name}.zip"

    with pytest.raises(FileProblem, match=r"is full; nothing was written to .*\.zip"):
        export_zip(database, name, target)

    assert list(small_disk.iterdir()) == []


def test_a_full_disk_during_delivery_leaves_nothing_and_says_what_happened(
    database: Database, database_conninfo: str, tmp_path: Path, small_disk: Path
) -> None:
    name = noisy_batch(database, tmp_path / "in")

    with pytest.raises(FileProblem) as caught:
        deliver_batch(database, name, small_disk)

    assert re.fullmatch(
        rf"Delivery of {name} failed: the disk holding {small_disk} is full after [0-3] of 4 "
        rf"files; nothing was left in {small_disk}\. Free some space or choose another folder\.",
        str(caught.value),
    ), str(caught.value)
    assert list(small_disk.iterdir()) == []  # no batch folder, no hidden partial folder
    with psycopg.connect(database_conninfo) as conn:
        row = conn.execute(
            "SELECT delivered_at FROM batches WHERE base_directory_name = %s", (name,)
        ).fetchone()
    assert row == (None,)


def test_a_full_disk_on_delivering_again_leaves_the_earlier_delivery_as_it_was(
    database: Database, tmp_path: Path, small_disk: Path
) -> None:
    name = noisy_batch(database, tmp_path / "in", count=1)
    deliver_batch(database, name, small_disk)
    delivered = {p.name: p.read_bytes() for p in (small_disk / name).iterdir()}
    filler = small_disk / "filler"
    with filler.open("wb") as stream, contextlib.suppress(OSError):
        while True:  # fill the disk
            stream.write(os.urandom(16_384))
            stream.flush()

    with pytest.raises(FileProblem) as caught:
        deliver_batch(database, name, small_disk)

    assert str(caught.value).startswith(f"Delivery of {name} failed: the disk holding ")
    assert str(caught.value).endswith(
        f"the earlier delivery in {small_disk / name} is as it was. "
        "Free some space or choose another folder."
    )
    assert sorted(p.name for p in small_disk.iterdir()) == [name, "filler"]
    assert {p.name: p.read_bytes() for p in (small_disk / name).iterdir()} == delivered


def test_a_read_only_folder_is_refused_with_a_sentence(
    database: Database, tmp_path: Path, read_only_folder: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=1).batches[0].base_directory_name
    run_all_jobs(database)

    with pytest.raises(FileProblem, match=r"read-only|permission denied"):
        export_zip(database, name, read_only_folder / "x.zip")
    with pytest.raises(FileProblem, match=r"read-only|permission denied"):
        export_job(database, name, "PL_DXB191_view0.png", read_only_folder / "job")

    assert list(read_only_folder.iterdir()) == []


def test_a_missing_folder_for_one_jobs_outputs_is_made(database: Database, tmp_path: Path) -> None:
    name = make_batch(database, tmp_path / "in", count=2).batches[0].base_directory_name
    run_all_jobs(database)

    summary = export_job(database, name, "PL_DXB192_view1.png", tmp_path / "new" / "folder")

    written = tmp_path / "new" / "folder" / "PL_DXB192_view1.png"
    assert written.read_bytes() == (tmp_path / "in" / "PL_DXB192_view1.png").read_bytes()
    assert (summary.files, summary.tally.completed) == (1, 1)
