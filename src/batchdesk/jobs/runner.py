"""The job runner: claims jobs from the shared queue and runs their pipelines on a task pool.

One runner per process. `batchdesk worker` gives it a thread pool; the window will hand it a
QThreadPool through the same `TaskPool` protocol. Three small threads keep it going:

- the dispatcher starts the jobs claimed for it, each once enough of the memory budget is
  free; when slots are still free it claims as many jobs as there are, in one statement;
  otherwise it sleeps until woken by a NOTIFY, a finished job, or the poll interval;
- the listener LISTENs on its own autocommit connection and wakes the dispatcher;
- the completions thread completes what the job threads finished, several jobs per
  statement when they finish together (see completion_batches), and in the same statement
  claims jobs for the slots that frees (job_cycle), which it hands to the dispatcher: on a
  busy farm a job costs one statement, not a claim and a completion;
- the heartbeat proves this worker alive every few seconds, notices jobs that were cancelled or
  reaped under it (they stop at their next step), and reaps dead workers' jobs (one reaper at a
  time across the studio). It also reads what the studio asks of this worker (`workers pause`,
  from any workstation): a paused worker finishes its running jobs and claims nothing new. A
  NOTIFY on `batchdesk_workers` brings that news at once; the heartbeat at the latest.

Running one job (its input, memory estimate, pipeline and outputs) is job_execution's. Nothing a
job produces is lost to a database outage: a completion that cannot reach the database is
retried until it can, or until the job turns out to be someone else's (then it is dropped).
"""

import collections
import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import psycopg

from batchdesk.jobs import temp_folders
from batchdesk.jobs.completion_batches import CompletionBatches
from batchdesk.jobs.job_execution import (
    CONNECTION_ERRORS,
    JobEvent,
    JobExecution,
    JobPlan,
    until_done,
)
from batchdesk.jobs.memory_estimate import over_budget_message
from batchdesk.storage import job_cycle, job_queue, worker_liveness, workers
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import ClaimedJob, Completion

log = logging.getLogger(__name__)
T = TypeVar("T")

MIB = 1 << 20


class TaskPool(Protocol):
    """Where job tasks run: a thread pool here, a QThreadPool in the window."""

    def start(self, task: Callable[[], None]) -> None: ...

    def shutdown(self) -> None: ...


class ThreadTaskPool:
    """A plain thread pool, for the headless worker and tests."""

    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="batchdesk-job")

    def start(self, task: Callable[[], None]) -> None:
        self._executor.submit(task)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


@dataclass(frozen=True)
class RunnerConfig:
    threads: int = 2
    max_pixels: int = 200_000_000
    # Jobs start only while the estimates of everything running fit in this budget; a job whose
    # own estimate is over it fails at once with a sentence (see memory_estimate).
    memory_budget: int = 2048 * MIB
    liveness_timeout: float = 30.0
    heartbeat_interval: float = 5.0
    poll_interval: float = 5.0
    work_dir: Path | None = None  # None: the system's temporary folder


class Runner:
    """Runs queued jobs on a task pool until stopped."""

    def __init__(
        self,
        database: Database,
        config: RunnerConfig | None = None,
        *,
        pool: TaskPool | None = None,
        on_event: Callable[[JobEvent], None] | None = None,
        worker_name: str | None = None,
        kind: str = "headless",
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.database = database
        self.config = config or RunnerConfig()
        self.worker_id = worker_liveness.new_worker_id(worker_name)
        self.kind = kind  # window or headless, as the studio's worker list shows it
        # Told "running" or "paused" when the studio's request for this worker changes.
        self._on_state = on_state or (lambda _state: None)
        self._paused = threading.Event()
        self._state_lock = threading.Lock()
        self._beat_soon = threading.Event()
        self._pool = pool or ThreadTaskPool(self.config.threads)
        self._on_event = on_event or (lambda _event: None)
        self._lock = threading.Condition()
        self._running: dict[int, ClaimedJob] = {}
        # Claimed, not yet running (waiting for room in the memory budget, or handed over by the
        # completions thread): held all the same, and each takes a slot.
        self._claimed: set[int] = set()
        # Claimed by the completions thread, in the claim's order, for the dispatcher to start.
        self._handed: collections.deque[ClaimedJob] = collections.deque()
        # Slots taken by claims under way: two claimers never claim for the same slot.
        self._claiming = 0
        self._revoked: set[int] = set()
        self._memory_in_use = 0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self.drained = threading.Event()
        self._threads: list[threading.Thread] = []
        self._work_dir = temp_folders.make_worker_folder(self.config.work_dir)
        self._completions = CompletionBatches(self._complete_and_claim, lambda: self.busy)
        self._execution = JobExecution(
            database,
            max_pixels=self.config.max_pixels,
            memory_budget=self.config.memory_budget,
            work_dir=self._work_dir,
            complete=self._completions.complete,
            stopping=self._stopping,
            is_revoked=lambda job_id: job_id in self._revoked,
            on_event=self._on_event,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        worker_liveness.register_worker(
            self.database, self.worker_id, self.config.threads, kind=self.kind
        )
        self._completions.start()
        for name, target in (
            ("dispatcher", self._dispatch_loop),
            ("listener", self._listen_loop),
            ("heartbeat", self._heartbeat_loop),
        ):
            thread = threading.Thread(target=target, name=f"batchdesk-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop claiming, give back the jobs not finished, and leave the studio's worker list."""
        self._stopping.set()
        self._wake.set()
        self._beat_soon.set()
        with contextlib.suppress(*CONNECTION_ERRORS):
            self._heartbeat()  # the studio's worker list says so while running jobs wind down
        dispatcher, *others = self._threads
        dispatcher.join()  # no new job starts after this
        self._pool.shutdown()  # running jobs stop at their next step and are given back
        self._completions.stop()  # after the job threads: their completions are stored
        self._give_back_handed()  # claimed by the last completions, never started
        for thread in others:
            thread.join(timeout=self.config.heartbeat_interval + 5)
        try:
            worker_liveness.unregister_worker(self.database, self.worker_id)
        except CONNECTION_ERRORS:
            log.warning("could not unregister %s: the reaper will tidy up", self.worker_id)
        shutil.rmtree(self._work_dir, ignore_errors=True)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def paused(self) -> bool:
        """True while the studio asks this worker to pause (it claims nothing new)."""
        return self._paused.is_set()

    # -- dispatcher --------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                started = self._start_some()
            except CONNECTION_ERRORS as exc:
                log.warning("claiming failed, retrying: %s", exc)
                started = False
            if started:
                continue
            self._check_drained()
            self._wake.wait(self.config.poll_interval)

    def _start_some(self) -> bool:
        """Start the jobs the completions thread claimed, else claim the free slots and start
        those; either way in the claim's order."""
        with self._lock:
            handed = list(self._handed)
            self._handed.clear()
        if handed:
            return self._start_all(handed)
        if self._paused.is_set():
            return False  # asked to pause: running jobs finish, nothing new starts
        free = self._reserve_slots(None)
        if free <= 0:
            return False
        jobs: list[ClaimedJob] = []
        try:
            jobs = job_queue.claim_many(self.database, self.worker_id, free)
        finally:
            self._unreserve_slots(free, jobs)
        return self._start_all(jobs)

    def _start_all(self, jobs: list[ClaimedJob]) -> bool:
        for index, job in enumerate(jobs):
            if not self._start(job):  # stopping: give back the claimed jobs not started
                for rest in jobs[index + 1 :]:
                    self._give_back(rest)
                return False
        return bool(jobs)

    def _reserve_slots(self, finishing: Sequence[Completion] | None) -> int:
        """Take the free slots for a claim; `finishing`: jobs whose slots its statement frees."""
        with self._lock:
            if self._stopping.is_set() or self._paused.is_set():
                return 0
            # A finishing job still counts as running until its thread has its answer.
            leaving = len(finishing or ())
            free = (
                self.config.threads
                - (len(self._running) - leaving)
                - len(self._claimed)
                - self._claiming
            )
            free = max(free, 0)
            self._claiming += free
            return free

    def _unreserve_slots(
        self, reserved: int, claimed: list[ClaimedJob], *, hand_over: bool = False
    ) -> None:
        """End a claim's reservation; its jobs are held (in _claimed) in the same moment, so no
        slot is counted twice or not at all, and the reaper never takes them for strays."""
        with self._lock:
            self._claiming -= reserved
            self._claimed.update(job.id for job in claimed)
            if hand_over:
                self._handed.extend(claimed)

    def _complete_and_claim(self, finished: Sequence[Completion]) -> set[int]:
        """Complete the jobs finished together and claim for the slots that frees: one statement.

        The claimed jobs go to the dispatcher, which starts them. Returns the ids completed (the
        others were fenced off).
        """
        free = self._reserve_slots(finished)
        claimed: list[ClaimedJob] = []
        try:
            cycle = self._until_done(
                lambda: job_cycle.complete_and_claim(self.database, self.worker_id, finished, free)
            )
            claimed = cycle.claimed
        finally:
            self._unreserve_slots(free, claimed, hand_over=True)
        if claimed:
            self.drained.clear()
            self._wake.set()
        return cycle.completed

    def _give_back_handed(self) -> None:
        """Release the jobs claimed for the dispatcher that it never started (stopping)."""
        with self._lock:
            left = list(self._handed)
            self._handed.clear()
        for job in left:
            try:
                self._give_back(job)
            except CONNECTION_ERRORS:
                log.warning("could not give back job %s: the reaper will", job.id)

    def _start(self, job: ClaimedJob) -> bool:
        """Start a claimed job once it fits the memory budget; False, given back, if stopping."""
        plan = self._until_done(lambda: self._execution.plan(job))
        memory = plan.memory
        budget = self.config.memory_budget
        refusal = None
        if memory is not None and memory.peak > budget:
            refusal = over_budget_message(job.file_name, job.pipeline, memory, budget)
        reserved = memory.peak if memory is not None and refusal is None else 0
        with self._lock:
            # Wait until the job fits beside those running (alone, it fits: see refusal).
            while (
                self._running
                and self._memory_in_use + reserved > budget
                and not self._stopping.is_set()
            ):
                self._lock.wait(timeout=1.0)
            self._claimed.discard(job.id)
            if self._stopping.is_set():
                self._give_back(job)
                return False
            self._running[job.id] = job
            self._memory_in_use += reserved
        self.drained.clear()
        self._pool.start(lambda: self._run(job, plan, reserved, refusal))
        return True

    def _give_back(self, job: ClaimedJob) -> None:
        """Release a claimed job that never started (the worker is stopping)."""
        self._until_done(lambda: job_queue.release(self.database, job))
        with self._lock:
            self._claimed.discard(job.id)

    def _check_drained(self) -> None:
        with self._lock:
            if self._running or self._claimed:
                return
        try:
            counts = job_queue.job_counts(self.database)
        except CONNECTION_ERRORS:
            return
        if counts.get("queued", 0) == 0 and counts.get("processing", 0) == 0:
            self.drained.set()

    # -- one job -----------------------------------------------------------------------------

    def _run(self, job: ClaimedJob, plan: JobPlan, reserved: int, refusal: str | None) -> None:
        try:
            self._execution.run(job, plan, refusal)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                self._revoked.discard(job.id)
                self._memory_in_use -= reserved
                self._lock.notify_all()
            self._wake.set()

    def _until_done(self, action: Callable[[], T]) -> T:
        return until_done(action, self._stopping)

    # -- heartbeat and reaper ----------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        beats = 0
        while not self._stopping.is_set():
            beats += 1
            try:
                self._beat(reap=beats % 2 == 1)
            except CONNECTION_ERRORS as exc:
                log.warning("heartbeat failed: %s", exc)
            # Sooner when the studio's request for this worker changed (see the listener).
            self._beat_soon.wait(self.config.heartbeat_interval)
            self._beat_soon.clear()

    def _heartbeat(self, running: list[ClaimedJob] | None = None) -> worker_liveness.Beat:
        return worker_liveness.heartbeat(
            self.database,
            self.worker_id,
            threads=self.config.threads,
            kind=self.kind,
            stopping=self._stopping.is_set(),
            paused=self._paused.is_set(),
            running=running or [],
        )

    def _beat(self, *, reap: bool) -> None:
        with self._lock:
            running = list(self._running.values())
            held = [*self._running, *self._claimed]
        # One statement: this worker's row, and which of its running jobs it still holds.
        beat = self._heartbeat(running)
        if not beat.was_known:
            # Declared dead (a long pause, a lost network): our jobs were given away.
            log.warning("%s was declared dead; it is listed again", self.worker_id)
        self._obey(beat.desired_state)
        with self._lock:
            self._revoked.update(job.id for job in running if job.id not in beat.held)
        if reap:
            result = worker_liveness.reap(
                self.database, self.config.liveness_timeout, reaper=self.worker_id, held=held
            )
            if result and (result.requeued or result.failed):
                log.warning(
                    "gave back %d and failed %d jobs of unresponsive workers",
                    result.requeued,
                    result.failed,
                )
                self._wake.set()

    def _obey(self, desired_state: str) -> None:
        """Pause or run again as the studio asks; tell the owner when that changes."""
        pause = desired_state == "paused"
        with self._state_lock:
            if pause == self._paused.is_set():
                return
            if pause:
                self._paused.set()
            else:
                self._paused.clear()
                self._wake.set()
        try:
            self._on_state(desired_state)
        except Exception:
            log.exception("state handler failed")

    def _on_workers_notification(self, payload: str) -> None:
        """A worker's row changed somewhere: if it is ours, obey and report at once."""
        try:
            news = json.loads(payload)
        except ValueError:
            return
        if not isinstance(news, dict) or news.get("id") != self.worker_id:
            return
        if news.get("op") == "delete":
            self._beat_soon.set()  # removed while alive: be listed again now
            return
        desired_state = news.get("desired_state")
        if isinstance(desired_state, str) and desired_state != news.get("state"):
            self._obey(desired_state)
            self._beat_soon.set()  # report the new state now, not at the next heartbeat

    # -- listener ----------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.database.conninfo, autocommit=True) as connection:
                    connection.execute("LISTEN batchdesk_batches")
                    connection.execute(f"LISTEN {workers.CHANNEL}")
                    delay = 0.5
                    self._wake.set()  # after a reconnect, look again: we may have missed news
                    self._beat_soon.set()
                    while not self._stopping.is_set():
                        # A short timeout so that a stop is noticed within a second.
                        for notification in connection.notifies(timeout=1.0):
                            if notification.channel == workers.CHANNEL:
                                self._on_workers_notification(notification.payload)
                            else:
                                self._wake.set()
            except psycopg.Error as exc:
                log.info("listener reconnecting in %.1f s: %s", delay, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
