"""Every export from the file store checks each file against its hash, leaving nothing half made."""

import hashlib
import random
from pathlib import Path

import pytest
from PIL import Image

from batchdesk.export.folder_export import deliver_batch, export_job
from batchdesk.export.zip_export import export_zip
from batchdesk.storage import file_bytes, folder_store
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.folder_store import DamagedFile
from tests.integration.jobs_support import run_all_jobs, submit_paths


def noise_png(path: Path, seed: int) -> Path:
    """An incompressible PNG of ~270 KB, like a small render."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = random.Random(seed).randbytes(300 * 300 * 3)
    Image.frombytes("RGB", (300, 300), pixels).save(path, format="PNG", compress_level=0)
    return path


def batch_in_store(database: Database, tmp_path: Path, count: int = 3) -> tuple[str, list[Path]]:
    store = tmp_path / "store"
    store.mkdir()
    with database.begin() as connection:
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(store)))
    sources = [noise_png(tmp_path / "in" / f"PL_DXB19{i}.png", seed=i) for i in range(count)]
    name = submit_paths(database, sources)
    run_all_jobs(database)  # `original`: each output is its input, the same stored file
    return name, sources


def damage(store: Path, source: Path) -> Path:
    """Change one byte in the middle of the stored copy of `source`, keeping its size."""
    stored = store / folder_store.relative_path(hashlib.sha256(source.read_bytes()).digest())
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    return stored


def test_a_damaged_store_file_fails_the_zip_export_naming_it_and_leaves_no_zip(
    database: Database, tmp_path: Path
) -> None:
    name, sources = batch_in_store(database, tmp_path)
    stored = damage(tmp_path / "store", sources[1])
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(DamagedFile, match=str(stored)):
        export_zip(database, name, out / "batch.zip")
    assert list(out.iterdir()) == []  # neither the zip nor its temporary file


def test_a_damaged_store_file_fails_a_job_export_and_a_delivery_leaving_nothing(
    database: Database, tmp_path: Path
) -> None:
    name, sources = batch_in_store(database, tmp_path)
    stored = damage(tmp_path / "store", sources[2])
    job_folder = tmp_path / "job"
    delivered = tmp_path / "delivered"

    with pytest.raises(DamagedFile, match=str(stored)):
        export_job(database, name, sources[2].name, job_folder)
    assert list(job_folder.iterdir()) == []
    with pytest.raises(DamagedFile, match=str(stored)):
        deliver_batch(database, name, delivered)
    assert list(delivered.iterdir()) == []

    export_job(database, name, sources[0].name, job_folder)  # a whole file still goes out
    [written] = job_folder.iterdir()
    assert written.read_bytes() == sources[0].read_bytes()
