"""Where the runner puts a job's input: in memory when it fits the budget, a file otherwise.

Either way the job's outputs are those of the pipeline run on the file, and the memory a job
holds is counted against the worker's memory budget, the input's bytes included.
"""

import hashlib
import json
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image

from batchdesk.domain.file_selection import select_files
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.image_pipeline import run_pipeline
from batchdesk.jobs.job_execution import JobEvent
from batchdesk.jobs.memory_estimate import estimate_job_memory
from batchdesk.jobs.pipeline_spec import parse_pipeline
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import blob_store, file_bytes, pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.submission import SubmissionRequest, submit

FAST = RunnerConfig(threads=2, heartbeat_interval=0.5, poll_interval=0.5, liveness_timeout=3)
SIZE = (400, 300)

# A tool that writes down what is in its job's folder (the folder above its own input's), waits
# a little so that jobs overlap, then copies its input to its output.
LIST_AND_COPY = "\n".join(
    [
        "import os, shutil, sys, time",
        "job_folder = os.path.dirname(os.path.dirname(sys.argv[1]))",
        "with open(sys.argv[3], 'a', encoding='utf-8') as out:",
        "    out.write(' '.join(sorted(os.listdir(job_folder))) + '\\n')",
        "time.sleep(float(sys.argv[4]))",
        "shutil.copy(sys.argv[1], sys.argv[2])",
    ]
)


def make_render(path: Path, seed: int, size: tuple[int, int] = SIZE) -> Path:
    rnd = random.Random(seed)
    noise = Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))
    Image.blend(Image.linear_gradient("L").resize(size).convert("RGB"), noise, 0.3).save(path)
    return path


def submit_files(database: Database, paths: list[Path], pipeline: str) -> None:
    selection = select_files(paths)
    submit(
        database,
        SubmissionRequest(
            files=selection.files, source_paths=tuple(paths), pipeline=pipeline, created_by="t@t"
        ),
    )


def add_listing_pipeline(conninfo: str, listing: Path, wait: float) -> list[dict[str, Any]]:
    tool = [sys.executable, "-c", LIST_AND_COPY, "{input}", "{output}", str(listing), str(wait)]
    steps: list[dict[str, Any]] = [
        {"op": "external", "args": tool, "timeout": 120},
        {"op": "output", "format": "png", "compress_level": 1},
    ]
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO pipelines (name, description, steps) VALUES ('listing', '', %s)",
            (json.dumps(steps),),
        )
    return steps


def peak_memory(steps: list[dict[str, Any]], size: tuple[int, int] = SIZE) -> int:
    """The pipeline's own estimate for an RGB input of `size`, without the input's bytes."""
    spec = parse_pipeline("listing", "", 1, steps)
    return estimate_job_memory(spec, *size, "RGB").peak


@contextmanager
def running(database: Database, config: RunnerConfig) -> Iterator[list[JobEvent]]:
    events: list[JobEvent] = []
    runner = Runner(database, config, on_event=events.append)
    runner.start()
    try:
        assert runner.drained.wait(90)
        yield events
    finally:
        runner.stop()


def statuses(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM jobs ORDER BY position")]


def most_at_once(events: list[JobEvent]) -> int:
    running_now: set[int] = set()
    most = 0
    for event in events:
        if event.kind == "started":
            running_now.add(event.job_id)
            most = max(most, len(running_now))
        else:
            running_now.discard(event.job_id)
    return most


def test_the_runner_s_outputs_are_the_pipeline_s_outputs_on_the_file_byte_for_byte(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    pipeline_store.install_missing(database, default_pipelines())
    paths = [make_render(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(3)]
    submit_files(database, paths, "thumbnails")

    with running(database, FAST):
        pass

    raw = next(p for p in default_pipelines() if p["name"] == "thumbnails")
    spec = parse_pipeline(raw["name"], raw["description"], raw["version"], raw["steps"])
    expected = {}
    for path in paths:
        work = tmp_path / f"work-{path.stem}"
        work.mkdir()
        for out in run_pipeline(spec, path, work, file_name=path.name):
            expected[out.name] = (out.width, out.height, out.path.read_bytes())
    stored = {}
    with database.connect() as connection:
        rows = connection.execute("SELECT name, width, height, sha256 FROM job_outputs").fetchall()
        for name, width, height, sha in rows:
            data = b"".join(blob_store.read_chunks(connection, bytes(sha)))
            assert hashlib.sha256(data).digest() == bytes(sha)
            stored[name] = (width, height, data)
    assert statuses(database_conninfo) == ["completed"] * 3
    assert stored == expected
    assert len(stored) == 6


def test_an_input_that_fits_the_budget_beside_its_images_is_never_written_to_disk(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    listing = tmp_path / "listing.txt"
    steps = add_listing_pipeline(database_conninfo, listing, wait=0)
    path = make_render(tmp_path / "PL_DXB191_v.png", seed=1)
    submit_files(database, [path], "listing")
    budget = peak_memory(steps) + path.stat().st_size  # exactly enough

    with running(database, replace(FAST, memory_budget=budget)):
        pass

    assert statuses(database_conninfo) == ["completed"]
    (folder,) = listing.read_text(encoding="utf-8").splitlines()
    assert "input.png" not in folder.split()


def test_an_input_too_big_to_hold_beside_its_images_goes_through_a_file_and_runs(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    listing = tmp_path / "listing.txt"
    steps = add_listing_pipeline(database_conninfo, listing, wait=0)
    path = make_render(tmp_path / "PL_DXB191_v.png", seed=1)
    submit_files(database, [path], "listing")
    # The images fit; the images and the input's bytes do not.
    budget = peak_memory(steps) + path.stat().st_size - 1

    with running(database, replace(FAST, memory_budget=budget)) as events:
        pass

    assert statuses(database_conninfo) == ["completed"]
    (folder,) = listing.read_text(encoding="utf-8").splitlines()
    assert "input.png" in folder.split()
    assert [e.kind for e in events] == ["started", "completed"]


def test_inputs_held_in_memory_count_against_the_budget(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    listing = tmp_path / "listing.txt"
    steps = add_listing_pipeline(database_conninfo, listing, wait=1.0)
    paths = [make_render(tmp_path / f"PL_DXB{191 + i}_v.png", seed=i) for i in range(2)]
    submit_files(database, paths, "listing")
    largest = max(p.stat().st_size for p in paths)
    # Each job fits with its input in memory; two jobs' images fit together, but not with
    # both inputs: the jobs must run one at a time.
    budget = 2 * peak_memory(steps) + largest

    with running(database, replace(FAST, memory_budget=budget)) as events:
        pass

    assert statuses(database_conninfo) == ["completed"] * 2
    assert most_at_once(events) == 1
    folders = listing.read_text(encoding="utf-8").splitlines()
    assert len(folders) == 2
    assert all("input.png" not in folder.split() for folder in folders)


def test_stored_bytes_past_the_submitted_size_fail_the_job_with_a_sentence(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    # The input is received into memory sized for the bytes submitted; a damaged copy with
    # more bytes (here a part too many) is told as such, not as an internal error.
    pipeline_store.install_missing(database, default_pipelines())
    path = make_render(tmp_path / "PL_DXB191_v.png", seed=1)
    submit_files(database, [path], "thumbnails")
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "INSERT INTO blob_chunks (sha256, chunk_index, data) "
            "SELECT sha256, max(chunk_index) + 1, '\\x00'::bytea FROM blob_chunks GROUP BY sha256"
        )

    with running(database, FAST) as events:
        pass

    message = (
        f"The stored copy of PL_DXB191_v.png is longer than the {path.stat().st_size:,} bytes "
        "submitted: it is damaged. Submit the file again."
    )
    with psycopg.connect(database_conninfo) as conn:
        rows = conn.execute("SELECT status, last_error FROM jobs").fetchall()
    assert rows == [("failed", message)]
    assert [(e.kind, e.message) for e in events] == [("started", ""), ("failed", message)]


def test_an_input_kept_in_the_file_store_is_estimated_and_held_in_memory_too(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with database.begin() as connection:
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(store)))
    listing = tmp_path / "listing.txt"
    steps = add_listing_pipeline(database_conninfo, listing, wait=0)
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "INSERT INTO pipelines (name, description, steps) VALUES ('huge-canvas', '', %s)",
            (json.dumps([{"op": "pad", "width": 6000, "height": 6000}, {"op": "output"}]),),
        )
    small = make_render(tmp_path / "PL_DXB191_v.png", seed=1)
    huge = make_render(tmp_path / "PL_DXB192_v.png", seed=2)
    submit_files(database, [small], "listing")
    submit_files(database, [huge], "huge-canvas")
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT DISTINCT location FROM blobs").fetchall() == [("store",)]
    budget = peak_memory(steps) + small.stat().st_size  # far below the canvas's 138 MB

    with running(database, replace(FAST, memory_budget=budget)):
        pass

    with psycopg.connect(database_conninfo) as conn:
        rows = conn.execute("SELECT file_name, status, last_error FROM jobs").fetchall()
    errors = {name: (status, error) for name, status, error in rows}
    assert errors["PL_DXB191_v.png"] == ("completed", None)
    status, error = errors["PL_DXB192_v.png"]
    assert status == "failed"
    assert "step 1 (pad): a 6000 × 6000 canvas needs about 138 MB of memory, more than" in error
    (folder,) = listing.read_text(encoding="utf-8").splitlines()
    assert "input.png" not in folder.split()
