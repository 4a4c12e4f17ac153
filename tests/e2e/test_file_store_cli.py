"""`batchdesk db file-store`: a studio keeps file bytes on its share; submit, work and export."""

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchdesk.storage.store_identity import MARKER_NAME
from tests.e2e.processes import run_together
from tests.factories import make_png


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def batchdesk(home: Path, *args: str | Path) -> tuple[int, str, str]:
    [run] = run_together(home, args)
    return run.returncode, run.stdout, run.stderr


def stored_files(store: Path) -> list[Path]:
    """The image files in a store folder (not the marker naming its database)."""
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name != MARKER_NAME)


def test_submit_work_and_export_with_the_bytes_in_a_folder_store(home: Path) -> None:
    store = home / "share" / "batchdesk"
    store.mkdir(parents=True)
    code, out, err = batchdesk(home, "db", "file-store", store)
    assert code == 0, err
    assert f"New files are kept in the file store {store}." in out
    code, out, err = batchdesk(home, "db", "status", "--json")
    assert code == 0, err
    assert json.loads(out)["file_store"] == {
        "new_files": "store",
        "folder": str(store),
        "folder_here": str(store),
    }
    inputs = [make_png(home / "in" / f"PL_DXB19{i}_v.png", (32, 32), seed=i) for i in range(3)]

    code, out, err = batchdesk(home, "submit", "--json", *inputs)
    assert code == 0, err
    name = json.loads(out)["batches"][0]["base_directory_name"]
    code, _out, err = batchdesk(home, "worker", "--drain")
    assert code == 0, err
    code, _out, err = batchdesk(home, "export", name, "--output", home / "out.zip")
    assert code == 0, err

    assert (store / MARKER_NAME).is_file()  # the folder says which database it serves
    stored = sorted(p.read_bytes() for p in stored_files(store))
    assert stored == sorted(p.read_bytes() for p in inputs)
    with zipfile.ZipFile(home / "out.zip") as archive:
        pngs = [archive.read(n) for n in archive.namelist() if n.endswith(".png")]
    assert sorted(pngs) == stored


def test_a_folder_that_is_not_there_is_refused_with_a_sentence(home: Path) -> None:
    code, out, err = batchdesk(home, "db", "file-store", home / "not-mounted")

    assert code == 1
    assert "is not there: is the share mounted on this machine?" in err
    code, out, err = batchdesk(home, "db", "file-store")
    assert code == 0, err
    assert out.strip() == "New files are kept in the database."


def test_a_machine_mounting_the_share_elsewhere_uses_its_mapping(home: Path) -> None:
    share = home / "media-share"
    (share / "batchdesk").mkdir(parents=True)
    settings = home / "config" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"file_store_mapping": f"/mnt/renders={share}"}))

    code, out, err = batchdesk(home, "db", "file-store", "/mnt/renders/batchdesk")

    assert code == 0, err
    assert "New files are kept in the file store /mnt/renders/batchdesk." in out
    assert f"so the folder is {share / 'batchdesk'}" in out
    source = make_png(home / "in" / "PL_DXB191_v.png", seed=5)
    code, _out, err = batchdesk(home, "submit", source)
    assert code == 0, err
    assert [p.read_bytes() for p in stored_files(share)] == [source.read_bytes()]


def test_db_check_files_names_a_damaged_file_and_fails(home: Path) -> None:
    store = home / "share"
    store.mkdir()
    code, _out, err = batchdesk(home, "db", "file-store", store)
    assert code == 0, err
    sources = [make_png(home / "in" / f"PL_DXB19{i}_v.png", seed=i) for i in range(2)]
    code, _out, err = batchdesk(home, "submit", *sources)
    assert code == 0, err
    code, out, err = batchdesk(home, "db", "check", "--files")
    assert code == 0, err
    assert "Every file in the file store is there and matches its hash." in out

    damaged = stored_files(store)[0]
    damaged.write_bytes(b"not the png it was")
    code, out, err = batchdesk(home, "db", "check", "--files")

    assert code == 1
    assert f"The stored file {damaged} is damaged" in out
    assert "1 stored file missing or damaged" in err


def test_deleting_a_batch_says_when_its_files_leave_the_store(home: Path) -> None:
    store = home / "share"
    store.mkdir()
    code, _out, err = batchdesk(home, "db", "file-store", store)
    assert code == 0, err
    inputs = [make_png(home / "in" / f"PL_DXB19{i}_v.png", seed=i) for i in range(2)]
    code, out, err = batchdesk(home, "submit", "--json", *inputs)
    assert code == 0, err
    name = json.loads(out)["batches"][0]["base_directory_name"]

    code, out, err = batchdesk(home, "delete", "--yes", name)

    assert code == 0, err
    assert f"Deleted {name} (2 files)." in out
    assert "Their 2 files in the file store go at the next `batchdesk db gc --yes`" in out
    assert len(stored_files(store)) == 2  # until then, the bytes stay
