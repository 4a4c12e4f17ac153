"""Completions that arrive within a few milliseconds of each other share one transaction.

Each completion costs the shared server a statement that locks the job and, through the
counting triggers, its batch row; on a busy farm of short jobs those statements queue up behind
each other on the batch rows. So a job thread hands its completion to one thread of the runner
and waits for the answer; that thread takes what is waiting, and what arrives within `window`
seconds while other jobs of this worker are still running, and completes them together: one
statement, one update per batch, each job still fenced on its own lease token, its outputs stored
with its completion. The runner's statement also claims the jobs for the slots the completed
ones free (`job_cycle.complete_and_claim`); this module only gathers.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from batchdesk.storage.job_queue import Completion

log = logging.getLogger(__name__)

WINDOW_SECONDS = 0.003
MAX_BATCH = 64  # completions per transaction: bounded, so one transaction stays short

CompleteMany = Callable[[Sequence[Completion]], set[int]]


class CompletionBatches:
    """Completes jobs for the job threads, several at a time; started and stopped by the runner."""

    def __init__(
        self,
        complete_many: CompleteMany,
        running: Callable[[], int],
        *,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._complete_many = complete_many  # waits out outages (Runner._complete_and_claim)
        self._running = running  # how many jobs this worker runs now
        self._window = window
        self._waiting: queue.SimpleQueue[tuple[Completion, Future[bool]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="batchdesk-completions", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Finish what was handed over, then end the thread (after the job threads ended)."""
        if self._thread is None:
            return
        self._waiting.put(None)
        self._thread.join()
        self._thread = None

    def complete(self, completion: Completion) -> bool:
        """Complete a job with the others arriving now; False if its lease was lost.

        Raises what completing raised (a database that stayed unavailable while stopping).
        """
        answer: Future[bool] = Future()
        self._waiting.put((completion, answer))
        return answer.result()

    def _loop(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            ending = self._gather(batch)
            self._finish(batch)
            if ending:
                return

    def _gather(self, batch: list[tuple[Completion, Future[bool]]]) -> bool:
        """Add what arrives within the window while other jobs run; True if told to end."""
        deadline = time.monotonic() + self._window
        while len(batch) < MAX_BATCH:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._running() <= len(batch):
                    return False  # no other job could finish within the window
                try:
                    item = self._waiting.get(timeout=remaining)
                except queue.Empty:
                    return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _finish(self, batch: list[tuple[Completion, Future[bool]]]) -> None:
        try:
            done = self._complete_many([completion for completion, _ in batch])
        except BaseException as exc:
            for _, answer in batch:
                answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for completion, answer in batch:
            answer.set_result(completion.job.id in done)
