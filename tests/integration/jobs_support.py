"""Running real jobs for tests that need what a pipeline produced."""

import json
import sys
from pathlib import Path

import psycopg

from batchdesk.domain.file_selection import select_files
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.submission import SubmissionRequest, submit

FAST = RunnerConfig(threads=2, heartbeat_interval=0.5, poll_interval=0.5, liveness_timeout=3)


def run_all_jobs(database: Database, timeout: float = 90) -> None:
    """Run every queued job on a real runner until nothing is left."""
    runner = Runner(database, FAST)
    runner.start()
    try:
        assert runner.drained.wait(timeout), "the runner did not finish the queue"
    finally:
        runner.stop()


def submit_paths(database: Database, paths: list[Path], pipeline: str = "original") -> str:
    """Submit `paths` as one batch with the shipped pipelines available; return its name."""
    pipeline_store.install_missing(database, default_pipelines())
    selection = select_files(paths)
    result = submit(
        database,
        SubmissionRequest(
            files=selection.files, source_paths=tuple(paths), pipeline=pipeline, created_by="t@t"
        ),
    )
    return result.batches[0].base_directory_name


# A pipeline whose one step takes a while, so a test can act while a job is running.
SLOW_COPY = "\n".join(
    [
        "import shutil, sys, time",
        "time.sleep(float(sys.argv[3]))",
        "shutil.copy(sys.argv[1], sys.argv[2])",
    ]
)


def add_slow_pipeline(conninfo: str, seconds: float, name: str = "slow") -> str:
    steps = [
        {
            "op": "external",
            "args": [sys.executable, "-c", SLOW_COPY, "{input}", "{output}", str(seconds)],
            "timeout": 120,
        },
        {"op": "output", "format": "png"},
    ]
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO pipelines (name, description, steps) VALUES (%s, 'slow copy', %s)",
            (name, json.dumps(steps)),
        )
    return name
