"""Running one job: estimate its memory, fetch its input, run its pipeline, store its outputs.

The runner (runner.py) decides which jobs run and when; `JobExecution` runs one it started on a
job thread and records how it ended (completed, failed, given back, dropped), telling the
runner's owner through `JobEvent`s. What it learns from the database it waits for through
outages (`until_done`): nothing a job produced is dropped because the server was away.
"""

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg

from batchdesk.errors import DatabaseUnavailable, InvalidRequest, KnownError, NotFound
from batchdesk.jobs import attempt_log
from batchdesk.jobs.image_input import png_header_size
from batchdesk.jobs.image_pipeline import run_pipeline
from batchdesk.jobs.job_failures import JobFailed, StopRequested
from batchdesk.jobs.job_warnings import recorded_warnings
from batchdesk.jobs.memory_estimate import MemoryEstimate, estimate_job_memory
from batchdesk.jobs.pipeline_spec import PipelineSpec, parse_pipeline
from batchdesk.storage import blob_store, file_bytes, job_queue, pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob, Completion, StoredOutput

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECTION_ERRORS = (DatabaseUnavailable, psycopg.OperationalError)


def until_done(action: Callable[[], T], stopping: threading.Event) -> T:
    """Run a database action, waiting out outages: what a job produced is never dropped.

    Once the worker is stopping, it gives up after a few tries and raises.
    """
    delay = 0.5
    while True:
        try:
            return action()
        except CONNECTION_ERRORS as exc:
            if stopping.is_set() and delay > 8:
                raise
            log.warning("database unavailable, retrying in %.1f s: %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


@dataclass(frozen=True)
class JobEvent:
    """Something that happened to a job on this worker, for progress lines and the window."""

    kind: str  # started, completed, failed, requeued, released, dropped
    job_id: int
    batch: str
    file_name: str
    message: str = ""
    seconds: float = 0.0
    outputs: int = 0


class JobExecution:
    """Runs the jobs a runner starts, one call of `run` per job, on the runner's job threads."""

    def __init__(
        self,
        database: Database,
        *,
        max_pixels: int,
        work_dir: Path,
        complete: Callable[[Completion], bool],
        stopping: threading.Event,
        is_revoked: Callable[[int], bool],
        on_event: Callable[[JobEvent], None],
    ) -> None:
        self.database = database
        self._max_pixels = max_pixels
        self._work_dir = work_dir
        # Completes a job, with others finishing at the same moment; False if fenced off.
        self._complete = complete
        self._stopping = stopping
        # True for a job cancelled or taken over while it runs (the heartbeat noticed).
        self._is_revoked = is_revoked
        self._on_event = on_event

    def _until_done(self, action: Callable[[], T]) -> T:
        return until_done(action, self._stopping)

    def estimate(self, job: ClaimedJob) -> MemoryEstimate | None:
        """Estimate a job's peak image memory from its input's header and its pipeline's steps.

        None when it cannot matter: no usable header, too many pixels, no valid pipeline. The
        job then fails on its own before it decodes anything.
        """
        with self.database.connect() as connection:
            size = png_header_size(job_queue.input_header(connection, job.input_sha256))
            try:
                row = pipeline_store.load_batch_pipeline(connection, job.batch_id, job.pipeline)
                spec = parse_pipeline(row.name, row.description, row.version, row.steps)
            except (NotFound, InvalidRequest):
                return None
        if size is None or size[0] * size[1] > self._max_pixels:
            return None
        return estimate_job_memory(spec, *size)

    def run(self, job: ClaimedJob, refusal: str | None) -> None:
        """Run a job to its end; `refusal` fails it at once (it can never fit the budget)."""
        # Pillow's warnings and what the job's tools say are kept with this attempt as its log
        # (attempt_log.recorded(), passed to the job's completion, failure or release).
        with recorded_warnings() as warned, attempt_log.recording(warnings=warned):
            self._run_recorded(job, refusal)
        for warning in dict.fromkeys(warned):  # once each: the file is opened more than once
            # Kept with the job rather than printed (see job_warnings).
            log.warning(
                "%s / %s: Pillow warned: %s", job.base_directory_name, job.file_name, warning
            )

    def _run_recorded(self, job: ClaimedJob, refusal: str | None) -> None:
        began = time.monotonic()
        work_dir = Path(tempfile.mkdtemp(prefix=f"job-{job.id}-", dir=self._work_dir))
        self._emit("started", job)
        try:
            if refusal is not None:
                raise JobFailed(refusal)  # it can never fit this worker's memory budget
            self._run_pipeline(job, work_dir, began)
        except StopRequested:
            if self._is_revoked(job.id):
                self._emit("dropped", job, "cancelled or taken over while running")
            else:
                self._until_done(
                    lambda: job_queue.release(self.database, job, log=attempt_log.recorded())
                )
                self._emit("released", job, "given back to the queue (worker stopping)")
        except JobFailed as exc:
            self._record_failure(job, str(exc), retryable=exc.retryable, began=began)
        except (NotFound, InvalidRequest) as exc:
            # The pipeline is gone or invalid: running the job again cannot help until a
            # person fixes the pipeline and retries the batch.
            self._record_failure(job, str(exc), retryable=False, began=began)
        except KnownError as exc:
            self._record_failure(job, str(exc), retryable=True, began=began)
        except Exception as exc:
            log.exception("bug while running job %s", job.id)
            message = (
                f"batchdesk hit an internal error on {job.file_name} ({exc.__class__.__name__}: "
                f"{exc}); the details are in the worker's log."
            )
            self._record_failure(job, message, retryable=False, began=began)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _should_stop(self, job: ClaimedJob) -> Callable[[], bool]:
        return lambda: self._stopping.is_set() or self._is_revoked(job.id)

    def _run_pipeline(self, job: ClaimedJob, work_dir: Path, began: float) -> None:
        input_path = work_dir / "input.png"
        spec = self._until_done(lambda: self._fetch(job, input_path))
        outputs = run_pipeline(
            spec,
            input_path,
            work_dir,
            file_name=job.file_name,
            max_pixels=self._max_pixels,
            should_stop=self._should_stop(job),
        )
        stored = [
            (
                StoredOutput(o.name, blob_store.hash_file(o.path), o.media_type, o.width, o.height),
                o.path,
            )
            for o in outputs
        ]
        completed = self._complete(Completion(job, stored, attempt_log.recorded()))
        seconds = time.monotonic() - began
        if completed:
            self._emit("completed", job, seconds=seconds, outputs=len(stored))
        else:
            self._emit("dropped", job, "cancelled or taken over while running", seconds=seconds)

    def _fetch(self, job: ClaimedJob, input_path: Path) -> PipelineSpec:
        with self.database.connect() as connection:
            row = pipeline_store.load_batch_pipeline(connection, job.batch_id, job.pipeline)
            # One streamed query: the server sends the next chunks while this one is written.
            with input_path.open("wb") as out:
                paths = self.database.share_paths
                for chunk in file_bytes.chunk_views(connection, job.input_sha256, paths):
                    out.write(chunk)
        return parse_pipeline(row.name, row.description, row.version, row.steps)

    def _record_failure(
        self, job: ClaimedJob, message: str, *, retryable: bool, began: float
    ) -> None:
        status = self._until_done(
            lambda: job_queue.fail(
                self.database, job, message, retryable=retryable, log=attempt_log.recorded()
            )
        )
        seconds = time.monotonic() - began
        if status == "queued":
            self._emit("requeued", job, message, seconds=seconds)
        elif status == "failed":
            self._emit("failed", job, message, seconds=seconds)
        else:
            self._emit("dropped", job, "cancelled or taken over while running", seconds=seconds)

    def _emit(
        self,
        kind: str,
        job: ClaimedJob,
        message: str = "",
        *,
        seconds: float = 0.0,
        outputs: int = 0,
    ) -> None:
        try:
            self._on_event(
                JobEvent(
                    kind, job.id, job.base_directory_name, job.file_name, message, seconds, outputs
                )
            )
        except Exception:
            log.exception("event handler failed")
