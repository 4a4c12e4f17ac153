"""Exporting a batch as a zip: what the job produced, under safe unique names, or nothing."""

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import psycopg
import pytest

from batchdesk.errors import Cancelled, FileProblem, NotFound
from batchdesk.export.transfer import ExportProgress
from batchdesk.export.zip_export import default_zip_name, export_zip
from batchdesk.storage.database import Database
from tests.factories import make_batch, make_damaged_png, make_png
from tests.integration.jobs_support import run_all_jobs, submit_paths


def produced(conninfo: str, base_name: str) -> dict[str, str]:
    """Output name -> sha256 hex of what the batch's jobs stored."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT o.name, o.sha256 FROM job_outputs o JOIN jobs j ON j.id = o.job_id "
            "JOIN batches b ON b.id = j.batch_id WHERE b.base_directory_name = %s",
            (base_name,),
        ).fetchall()
    return {name: bytes(sha).hex() for name, sha in rows}


def read_manifest(archive: zipfile.ZipFile, folder: str) -> list[dict[str, str]]:
    text = archive.read(f"{folder}/manifest.csv").decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_zip_holds_every_output_of_the_batch_byte_for_byte(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    paths = [
        make_png(tmp_path / "in" / f"PL_DXB191_view{i}.png", (64, 48), seed=i) for i in range(3)
    ]
    name = submit_paths(database, paths, "web-delivery")
    run_all_jobs(database)
    target = tmp_path / "out" / default_zip_name(name)
    target.parent.mkdir()
    seen: list[ExportProgress] = []

    summary = export_zip(database, name, target, progress=seen.append)

    assert summary.warnings == ()
    expected = produced(database_conninfo, name)
    assert len(expected) == 9  # full PNG, web JPEG and thumbnail for each of three
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert sorted(names) == sorted([f"{name}/{n}" for n in expected] + [f"{name}/manifest.csv"])
        for output, sha in expected.items():
            assert hashlib.sha256(archive.read(f"{name}/{output}")).hexdigest() == sha
        kinds = {i.filename.rsplit(".", 1)[-1]: i.compress_type for i in archive.infolist()}
        assert kinds == {
            "png": zipfile.ZIP_STORED,
            "jpg": zipfile.ZIP_STORED,
            "csv": zipfile.ZIP_DEFLATED,
        }
        manifest = read_manifest(archive, name)
    assert {row["output"]: row["output_sha256"] for row in manifest} == expected
    assert {row["status"] for row in manifest} == {"completed"}
    assert (summary.files, summary.tally.completed) == (9, 3)
    assert seen[-1].done_bytes == seen[-1].total_bytes == summary.bytes > 0
    assert leftovers(target.parent) == [target.name]


def test_originals_can_travel_with_the_outputs(database: Database, tmp_path: Path) -> None:
    path = make_png(tmp_path / "PL_DXB191_a.png", (40, 40), seed=3)
    name = submit_paths(database, [path], "thumbnails")
    run_all_jobs(database)
    target = tmp_path / "with-inputs.zip"

    export_zip(database, name, target, include_inputs=True)

    with zipfile.ZipFile(target) as archive:
        assert archive.read(f"{name}/originals/PL_DXB191_a.png") == path.read_bytes()
        (row, _second) = read_manifest(archive, name)
    assert row["original"] == "originals/PL_DXB191_a.png"


def test_hostile_names_never_leave_the_batch_folder(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=8).batches[0].base_directory_name
    run_all_jobs(database)
    hostile = [
        "../../../etc/cron.d/evil.png",
        "/absolute/evil.png",
        "C:\\Windows\\System32\\evil.png",
        "D:evil.png",
        "..",
        "con.png",
        "line\nbreak\x01.png",
        "folder/../../sneaky.png",
    ]
    with psycopg.connect(database_conninfo) as conn:
        ids = [r[0] for r in conn.execute("SELECT job_id FROM job_outputs ORDER BY job_id")]
        for job_id, evil in zip(ids, hostile, strict=True):
            conn.execute("UPDATE job_outputs SET name = %s WHERE job_id = %s", (evil, job_id))
    target = tmp_path / "hostile.zip"

    export_zip(database, name, target)

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(target) as archive:
        entries = archive.namelist()
        archive.extractall(unpacked)
    for entry in entries:
        folder, _, file_name = entry.partition("/")
        assert folder == name
        assert file_name
        assert "/" not in file_name
        assert "\\" not in file_name
        assert ":" not in file_name
        assert not file_name.startswith(".")
        assert all(ord(c) >= 32 for c in file_name)
    assert len(entries) == 9
    assert leftovers(unpacked) == [name]
    assert "evil.png" in {e.split("/")[1] for e in entries}
    assert "_con.png" in {e.split("/")[1] for e in entries}


def test_duplicate_names_get_stable_readable_suffixes(database: Database, tmp_path: Path) -> None:
    paths = [
        make_png(tmp_path / "a" / "PL_DXB191_x.png", seed=1),
        make_png(tmp_path / "b" / "PL_DXB191_x.png", seed=2),
        make_png(tmp_path / "c" / "PL_DXB191_X.png", seed=3),
    ]
    name = submit_paths(database, paths)
    run_all_jobs(database)

    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    export_zip(database, name, first)
    export_zip(database, name, second)

    with zipfile.ZipFile(first) as one, zipfile.ZipFile(second) as two:
        assert one.namelist() == two.namelist()
        files = [n.split("/", 1)[1] for n in one.namelist()]
        contents = [one.read(n) for n in one.namelist()[:3]]
    assert files == [
        "PL_DXB191_x.png",
        "PL_DXB191_x (2).png",
        "PL_DXB191_X (3).png",
        "manifest.csv",
    ]
    assert contents == [p.read_bytes() for p in paths]


def test_a_batch_with_failed_and_unfinished_jobs_exports_and_says_so(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    good = make_png(tmp_path / "PL_DXB191_good.png", seed=1)
    bad = make_damaged_png(tmp_path / "PL_DXB191_bad.png", seed=2)  # the job fails
    name = submit_paths(database, [good, bad])
    run_all_jobs(database)
    later = make_png(tmp_path / "later" / "PL_DXB191_late.png", seed=9)
    with psycopg.connect(database_conninfo) as conn:
        # A third job still queued: as if the export ran while the batch was still running.
        (batch_id,) = conn.execute(
            "SELECT id FROM batches WHERE base_directory_name = %s", (name,)
        ).fetchone()
        conn.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline) "
            "SELECT batch_id, 2, 'PL_DXB191_late.png', input_sha256, input_size, pipeline "
            "FROM jobs WHERE batch_id = %s AND position = 0",
            (batch_id,),
        )
    target = tmp_path / "partial.zip"

    summary = export_zip(database, name, target)

    assert (summary.tally.completed, summary.tally.failed, summary.tally.unfinished) == (1, 1, 1)
    text = " ".join(summary.warnings)
    assert "1 job of 3" in text
    assert "not finished" in text
    assert "1 job" in text
    assert "failed" in text
    with zipfile.ZipFile(target) as archive:
        rows = read_manifest(archive, name)
        assert archive.namelist() == [f"{name}/PL_DXB191_good.png", f"{name}/manifest.csv"]
    by_file = {row["file_name"]: row for row in rows}
    assert by_file["PL_DXB191_bad.png"]["status"] == "failed"
    assert "PL_DXB191_bad.png" in by_file["PL_DXB191_bad.png"]["error"]
    assert by_file["PL_DXB191_late.png"]["status"] == "queued"
    assert by_file["PL_DXB191_late.png"]["output"] == ""
    assert later.exists()


def test_a_cancelled_export_leaves_nothing(database: Database, tmp_path: Path) -> None:
    name = make_batch(database, tmp_path / "in", count=3).batches[0].base_directory_name
    run_all_jobs(database)
    target = tmp_path / "out" / "cancelled.zip"
    target.parent.mkdir()
    calls = 0

    def cancel_after_first_chunk() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    with pytest.raises(Cancelled, match="nothing was written"):
        export_zip(database, name, target, cancelled=cancel_after_first_chunk)
    assert leftovers(target.parent) == []


def test_an_existing_file_is_replaced_only_when_allowed(database: Database, tmp_path: Path) -> None:
    name = make_batch(database, tmp_path / "in", count=1).batches[0].base_directory_name
    run_all_jobs(database)
    target = tmp_path / "mine.zip"
    target.write_bytes(b"precious")

    with pytest.raises(FileProblem, match="already exists"):
        export_zip(database, name, target)
    assert target.read_bytes() == b"precious"

    export_zip(database, name, target, overwrite=True)
    assert zipfile.is_zipfile(target)


def test_an_unknown_batch_or_missing_folder_is_a_sentence(
    database: Database, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="There is no batch"):
        export_zip(database, "PL_DXB_2026-11-28_batch-99", tmp_path / "x.zip")
    with pytest.raises(FileProblem, match="does not exist"):
        export_zip(database, "anything", tmp_path / "missing" / "x.zip")
    assert leftovers(tmp_path) == []
