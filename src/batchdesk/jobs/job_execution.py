"""Running one job: plan it, fetch its input, run its pipeline, store its outputs.

The runner (runner.py) decides which jobs run and when; `JobExecution` plans each job it claims
(`plan`: its pipeline, read once, and its memory estimate) and runs one it started on a job
thread, recording how it ended (completed, failed, given back, dropped) and telling the
runner's owner through `JobEvent`s. What it learns from the database it waits for through
outages (`until_done`): nothing a job produced is dropped because the server was away.

An input whose bytes fit the memory budget beside the job's images is received into memory and
decoded from there (`InputBuffer`); a larger one goes through a temporary file in the job's
folder. Either way the input is read the same way and the outputs are the same.
"""

import errno
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import psycopg

from batchdesk.errors import DatabaseUnavailable, InvalidRequest, KnownError, NotFound
from batchdesk.jobs import attempt_log
from batchdesk.jobs.image_input import png_header_size
from batchdesk.jobs.image_pipeline import run_pipeline
from batchdesk.jobs.input_buffer import InputBuffer, InputBuffers
from batchdesk.jobs.job_failures import JobFailed, StopRequested
from batchdesk.jobs.job_warnings import recorded_warnings
from batchdesk.jobs.memory_estimate import MemoryEstimate, estimate_job_memory
from batchdesk.jobs.pipeline_spec import PipelineSpec, parse_pipeline
from batchdesk.storage import blob_store, file_bytes, job_queue, pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob, Completion, StoredOutput

log = logging.getLogger(__name__)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
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


@dataclass(frozen=True)
class JobPlan:
    """What a claimed job needs, read once before it starts.

    `memory` is what the runner reserves in its budget (None: nothing it can estimate; the job
    then fails on its own before decoding), including the input's bytes when `in_memory`.
    `problem` is why the job's pipeline cannot be used: the job fails with it.
    """

    memory: MemoryEstimate | None
    spec: PipelineSpec | None = None
    problem: NotFound | InvalidRequest | None = None
    in_memory: bool = False


class JobExecution:
    """Runs the jobs a runner starts, one call of `run` per job, on the runner's job threads."""

    def __init__(
        self,
        database: Database,
        *,
        max_pixels: int,
        memory_budget: int,
        work_dir: Path,
        complete: Callable[[Completion], bool],
        stopping: threading.Event,
        is_revoked: Callable[[int], bool],
        on_event: Callable[[JobEvent], None],
    ) -> None:
        self.database = database
        self._max_pixels = max_pixels
        self._memory_budget = memory_budget
        self._buffers = InputBuffers()
        self._work_dir = work_dir
        # Completes a job, with others finishing at the same moment; False if fenced off.
        self._complete = complete
        self._stopping = stopping
        # True for a job cancelled or taken over while it runs (the heartbeat noticed).
        self._is_revoked = is_revoked
        self._on_event = on_event

    def _until_done(self, action: Callable[[], T]) -> T:
        return until_done(action, self._stopping)

    def plan(self, job: ClaimedJob) -> JobPlan:
        """Read a job's pipeline and estimate its peak memory from its input's header.

        The estimate is None when it cannot matter: no usable header, too many pixels, no valid
        pipeline. The job then fails on its own before it decodes anything.
        """
        with self.database.connect() as connection:
            paths = self.database.share_paths
            size = png_header_size(file_bytes.head(connection, job.input_sha256, paths))
            try:
                row = pipeline_store.load_batch_pipeline(connection, job.batch_id, job.pipeline)
                spec = parse_pipeline(row.name, row.description, row.version, row.steps)
            except (NotFound, InvalidRequest) as exc:
                return JobPlan(None, problem=exc)
        if size is None or size[0] * size[1] > self._max_pixels:
            return JobPlan(None, spec)
        memory = estimate_job_memory(spec, *size)
        # Held in memory from its download to the job's end, the input counts at the peak. A
        # pipeline without steps never decodes: it reads its input as a stream, from a file.
        with_input = memory.peak + job.input_size
        if spec.steps and with_input <= self._memory_budget:
            return JobPlan(replace(memory, peak=with_input), spec, in_memory=True)
        return JobPlan(memory, spec)

    def run(self, job: ClaimedJob, plan: JobPlan, refusal: str | None) -> None:
        """Run a planned job to its end; `refusal` fails it at once (it can never fit)."""
        # Pillow's warnings and what the job's tools say are kept with this attempt as its log
        # (attempt_log.recorded(), passed to the job's completion, failure or release).
        with recorded_warnings() as warned, attempt_log.recording(warnings=warned):
            self._run_recorded(job, plan, refusal)
        for warning in dict.fromkeys(warned):  # once each: the file is opened more than once
            # Kept with the job rather than printed (see job_warnings).
            log.warning(
                "%s / %s: Pillow warned: %s", job.base_directory_name, job.file_name, warning
            )

    def _run_recorded(self, job: ClaimedJob, plan: JobPlan, refusal: str | None) -> None:
        began = time.monotonic()
        work_dir = Path(tempfile.mkdtemp(prefix=f"job-{job.id}-", dir=self._work_dir))
        self._emit("started", job)
        try:
            if refusal is not None:
                raise JobFailed(refusal)  # it can never fit this worker's memory budget
            if plan.problem is not None:
                raise plan.problem
            assert plan.spec is not None
            if plan.in_memory:
                with self._buffers.lent(job.input_size) as received:
                    self._run_pipeline(job, plan.spec, received, work_dir, began)
            else:
                self._run_pipeline(job, plan.spec, work_dir / "input.png", work_dir, began)
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
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                self._record_bug(job, exc, began)
            else:
                # This worker's disk, not the job: another worker, or this one once there is
                # room, can run it.
                message = (
                    f"The worker's temporary folder {self._work_dir} is full ({exc.strerror}) "
                    f"while running {job.file_name}: free space there, or start the worker "
                    "with TMPDIR set to a larger disk."
                )
                self._record_failure(job, message, retryable=True, began=began)
        except Exception as exc:
            self._record_bug(job, exc, began)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _should_stop(self, job: ClaimedJob) -> Callable[[], bool]:
        return lambda: self._stopping.is_set() or self._is_revoked(job.id)

    def _run_pipeline(
        self,
        job: ClaimedJob,
        spec: PipelineSpec,
        source: InputBuffer | Path,
        work_dir: Path,
        began: float,
    ) -> None:
        self._until_done(lambda: self._fetch(job, source))
        outputs = run_pipeline(
            spec,
            source,
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

    def _fetch(self, job: ClaimedJob, target: InputBuffer | Path) -> None:
        """Receive a job's input into memory or a file (from the start again on a retry)."""
        with self.database.connect() as connection:
            paths = self.database.share_paths
            # One streamed query: the server sends the next chunks while this one is written.
            chunks = file_bytes.chunk_views(connection, job.input_sha256, paths)
            if isinstance(target, InputBuffer):
                target.clear()
                for chunk in chunks:
                    if len(chunk) > target.room:
                        # Read on: a store file is checked against its hash at its end, and
                        # that sentence names the damaged file.
                        for _rest in chunks:
                            pass
                        raise JobFailed(
                            f"The stored copy of {job.file_name} is longer than the "
                            f"{job.input_size:,} bytes submitted: it is damaged. Submit the "
                            "file again."
                        )
                    target.write(chunk)
                return
            with target.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)

    def _record_bug(self, job: ClaimedJob, exc: Exception, began: float) -> None:
        log.exception("bug while running job %s", job.id)
        message = (
            f"batchdesk hit an internal error on {job.file_name} ({exc.__class__.__name__}: "
            f"{exc}); the details are in the worker's log."
        )
        self._record_failure(job, message, retryable=False, began=began)

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
